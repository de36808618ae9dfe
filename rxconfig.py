import reflex as rx
from reflex.plugins.sitemap import SitemapPlugin

from course_app.settings import load_settings_or_exit

settings = load_settings_or_exit()

config = rx.Config(
    app_name="course_app",
    telemetry_enabled=False,
    # The socket and every HTTP route accept only the configured origins.
    cors_allowed_origins=settings.allowed_origins,
    # Reflex's router.session.client_ip reads X-Forwarded-For by the same rule as ours.
    trusted_proxy_hops=settings.trusted_proxy_hops,
    show_built_with_reflex=False,
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(accent_color="indigo", radius="medium"))],
    disable_plugins=[SitemapPlugin],
)
