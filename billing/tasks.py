from celery import shared_task

from billing import actions


@shared_task(name="billing.enforce_grace", ignore_result=True)
def enforce_grace() -> int:
    """Accounts whose payment failed longer ago than the grace period fall back to the free plan."""
    return actions.enforce_all_grace_periods()
