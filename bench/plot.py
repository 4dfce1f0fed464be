"""Draw bench/results.json as bench/results.svg (no plotting library: a few SVG elements).

    .venv/bin/python -m bench.plot

Left: throughput, ours against its reference and the target, one bar pair per measurement
(delivery and the 20 ms runs in their steady state: workers up, pools warm).
Right: the delivery worker's resident memory against messages delivered.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT = 960, 380
OURS, REFERENCE, TARGET = "#2563eb", "#9ca3af", "#dc2626"


def _bars(results: dict) -> list[tuple[str, float, float | None, float | None]]:
    """(label, ours, reference, target) in messages or requests per second."""
    rows = []
    if "accept" in results:
        accept = results["accept"]
        rows.append(("accept (req/s)", accept["send"]["rps"], accept["bare_drf"]["rps"], accept["bare_drf"]["rps"] / 2))
    if "delivery" in results:
        delivery = results["delivery"]
        peers = [p["send_msg_s"] for p in delivery.get("post_office") or [] if p]
        peer = max(peers) if peers else None
        ours = delivery.get("steady_msg_s", delivery["ours_msg_s"])
        # Reference: django-post-office (the peer, also the target); raw smtplib below it.
        rows.append(("delivery vs post-office", ours, peer, peer))
        rows.append(("delivery vs raw smtplib", ours, delivery["raw_smtplib_msg_s"], None))
    for row in results.get("rtt_20ms", []):
        label = f"20 ms RTT, {row['processes']}x{row['threads_per_process']} thr."
        rows.append((label, row.get("steady_msg_s", row["msg_s"]), None, 200.0))
    if "pipeline" in results:
        pipeline = results["pipeline"]
        rows.append(("pipeline accepted", pipeline["accepted_msg_s"], None, 250.0))
        rows.append(("pipeline delivered", pipeline["delivered_msg_s"], None, 250.0))
    return rows


def svg(results: dict) -> str:
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" '
        'font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        '<text x="10" y="20" font-size="14" font-weight="bold">Throughput: ours (blue), reference (grey), '
        "target (red line)</text>",
    ]
    rows = _bars(results)
    top = max([v for row in rows for v in row[1:] if v] or [1.0])
    left, span, y = 200, 330, 40
    for label, ours, reference, target in rows:
        parts.append(f'<text x="{left - 8}" y="{y + 12}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{span * ours / top:.1f}" height="10" fill="{OURS}"/>')
        parts.append(f'<text x="{left + span * ours / top + 4:.1f}" y="{y + 9}">{ours:,.0f}</text>')
        if reference:
            parts.append(
                f'<rect x="{left}" y="{y + 11}" width="{span * reference / top:.1f}" height="8" fill="{REFERENCE}"/>'
            )
            parts.append(f'<text x="{left + span * reference / top + 4:.1f}" y="{y + 19}">{reference:,.0f}</text>')
        if target:
            x = left + span * target / top
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 2}" y2="{y + 21}" stroke="{TARGET}"/>')
        y += 30
    samples = results.get("worker_memory", {}).get("samples", [])
    if samples:
        x0, y0, w, h = 600, 60, 330, 260
        parts.append(f'<text x="{x0}" y="20" font-size="14" font-weight="bold">Worker memory (MB) vs delivered</text>')
        parts.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#d1d5db"/>')
        most = max(s["delivered"] for s in samples) or 1
        ceiling = max(s["rss_mb"] for s in samples) * 1.25
        points = " ".join(
            f"{x0 + w * s['delivered'] / most:.1f},{y0 + h - h * s['rss_mb'] / ceiling:.1f}" for s in samples
        )
        parts.append(f'<polyline points="{points}" fill="none" stroke="{OURS}" stroke-width="2"/>')
        for value in (0, ceiling / 2, ceiling):
            parts.append(
                f'<text x="{x0 - 4}" y="{y0 + h - h * value / ceiling + 4:.1f}" text-anchor="end">{value:.0f}</text>'
            )
        parts.append(f'<text x="{x0 + w}" y="{y0 + h + 16}" text-anchor="end">{most:,} messages</text>')
        parts.append(f'<text x="{x0}" y="{y0 + h + 16}">0</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    results = json.loads((HERE / "results.json").read_text())
    (HERE / "results.svg").write_text(svg(results))
    print(f"wrote {HERE / 'results.svg'}")


if __name__ == "__main__":
    main()
