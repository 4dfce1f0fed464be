"""The back office's tests: staff roles as `setup_roles` makes them, and a Support member."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

STAFF_PASSWORD = "a sturdy staff passphrase"


@pytest.fixture
def roles(db, settings):
    """The Support and Finance groups; the admin without its second factor (tests sign in by force_login)."""
    settings.ADMIN_REQUIRE_2FA = False
    call_command("setup_roles", stdout=open("/dev/null", "w"))  # noqa: SIM115


@pytest.fixture
def sam(roles, django_user_model):
    """A Support member."""
    user = django_user_model.objects.create_user("sam@3drake.test", STAFF_PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name="Support"))
    return user
