import reflex as rx
from reflex.plugins.sitemap import SitemapPlugin

from course_app.settings import load_settings_or_exit

settings = load_settings_or_exit()
# Redis (COURSE_REDIS_URL) makes Reflex keep each tab's state there, so any backend
# worker on any machine can serve a reconnecting socket; the public URL (the reverse
# proxy's) is where the built front end finds the backend.
production = {"redis_url": settings.redis_url} if settings.redis_url else {}
if settings.public_url:
    production |= {"api_url": settings.public_url, "deploy_url": settings.public_url}

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
    **production,
)
