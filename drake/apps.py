from django.apps import AppConfig


class DrakeConfig(AppConfig):
    name = "drake"
    verbose_name = "3drake"

    def ready(self) -> None:
        from drake import checks  # noqa: F401  (registers the system checks)


from django.contrib.admin.apps import AdminConfig  # noqa: E402


class DrakeAdminConfig(AdminConfig):
    default_site = "drake.admin.DrakeAdminSite"
