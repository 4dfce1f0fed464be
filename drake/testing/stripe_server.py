"""localstripe on loopback, for tests: `python -m drake.testing.stripe_server --port N`.

localstripe (GPL, test-only, its own process) has customers, plans, subscriptions, invoices and
events, but no Checkout or Billing Portal sessions: this adds those two routes as a small shim,
and binds to 127.0.0.1 (its own CLI listens on every interface).
"""

from __future__ import annotations

import argparse
import secrets

from aiohttp import web


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"

    from localstripe.errors import UserError
    from localstripe.resources import Customer, Subscription
    from localstripe.server import app, get_post_data, store

    store.clear()  # Never the pickled state of an earlier run.
    cancel = Subscription._api_delete.__func__

    def cancel_once(cls: type, id: str) -> object:
        # As Stripe: a cancelled subscription cancelled again is "No such subscription" (localstripe says nothing).
        if Subscription._api_retrieve(id).status in ("canceled", "incomplete_expired"):
            raise UserError(404, f"No such subscription: '{id}'")
        return cancel(cls, id)

    Subscription._api_delete = classmethod(cancel_once)
    sessions: dict[str, dict] = {}

    async def create_checkout_session(request: web.Request) -> web.Response:
        data = await get_post_data(request) or {}
        Customer._api_retrieve(data.get("customer"))  # As Stripe: no session for a customer it does not have.
        session_id = f"cs_test_{secrets.token_hex(12)}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": data.get("mode"),
            "customer": data.get("customer"),
            "client_reference_id": data.get("client_reference_id"),
            "success_url": data.get("success_url"),
            "cancel_url": data.get("cancel_url"),
            "line_items": data.get("line_items"),
            "subscription": None,
            "url": f"{base}/checkout/{session_id}",
        }
        sessions[session_id] = session
        return web.json_response(session)

    async def get_checkout_session(request: web.Request) -> web.Response:
        return web.json_response(sessions[request.match_info["id"]])

    async def create_portal_session(request: web.Request) -> web.Response:
        data = await get_post_data(request) or {}
        Customer._api_retrieve(data.get("customer"))
        session_id = f"bps_{secrets.token_hex(12)}"
        return web.json_response(
            {
                "id": session_id,
                "object": "billing_portal.session",
                "customer": data.get("customer"),
                "return_url": data.get("return_url"),
                "url": f"{base}/portal/{session_id}",
            }
        )

    async def last_checkout_session(request: web.Request) -> web.Response:
        return web.json_response(list(sessions.values())[-1] if sessions else {})

    app.router.add_post("/v1/checkout/sessions", create_checkout_session)
    app.router.add_get("/v1/checkout/sessions/{id}", get_checkout_session)
    app.router.add_post("/v1/billing_portal/sessions", create_portal_session)
    app.router.add_get("/_test/last_checkout_session", last_checkout_session)
    web.run_app(app, host="127.0.0.1", port=args.port, print=lambda *a: print("ready", flush=True))


if __name__ == "__main__":
    main()
