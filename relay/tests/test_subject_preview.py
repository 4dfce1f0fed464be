"""A subject's preview counts the characters a reader sees, not code points.

Privacy policy 2.4 keeps the subject only "in a minimized form, such as ... a redacted preview";
relay.minimize shows at most PREVIEW_CHARS characters and never more than half of them. Both
were counted in code points: combining accents, variation selectors and the joiners of an emoji
sequence count one each but show as nothing of their own, so "1234" followed by four accents
was kept as its whole "1234…", and "Paid ❤️‍🔥" as "Paid…", four of its six characters. Found by
a privacy review helper.
"""

import pytest

from relay.minimize import minimize_subject


@pytest.mark.parametrize(
    ("subject", "preview"),
    [
        ("1234" + "\u0301" * 4, "12…"),  # Four characters, accents on the last one.
        ("Paid \u2764\ufe0f\u200d\U0001f525", "Pai…"),  # Six characters: the heart on fire is one.
        ("Cafe\u0301 ouvert", "Café…"),  # An accent stays with its letter, not cut off.
    ],
)
def test_the_preview_counts_what_a_reader_sees(subject, preview):
    assert minimize_subject(subject, policy="preview", account_id=1)["preview"] == preview
