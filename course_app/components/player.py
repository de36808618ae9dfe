"""A <video> element playing a signed, expiring link (services/playback.py).

When a link runs out while the video is open (a long lesson, a long pause), the
next range request is refused and the element reports an error: it then asks
``/api/videos/{id}/playback`` (same origin, the page's own log-in) for a fresh
link and carries on from where it was. All in the browser, no round trip
through State."""

from __future__ import annotations

import reflex as rx
from reflex_base.vars.function import FunctionStringVar

RENEW_ON_ERROR = FunctionStringVar.create(
    "(event) => { const v = event.currentTarget; const id = v.dataset.videoId;"
    " if (!id || v.dataset.renewing) return; v.dataset.renewing = '1'; const at = v.currentTime;"
    " fetch('/api/videos/' + encodeURIComponent(id) + '/playback', {credentials: 'same-origin'})"
    ".then((r) => (r.ok ? r.json() : null)).then((links) => { if (links && links.url) {"
    " v.src = links.url; v.addEventListener('loadedmetadata', () => { v.currentTime = at; }, {once: true}); } })"
    ".catch(() => {}).finally(() => setTimeout(() => { delete v.dataset.renewing; }, 30000)); }"
)
# At the end of a lesson, press the page's "Next lesson" button if it has one.
NEXT_ON_END = FunctionStringVar.create(
    "() => { const next = document.querySelector('[data-next-lesson]'); if (next && !next.disabled) next.click(); }"
)


def signed_video(video_id: rx.Var[str], src: rx.Var[str], poster: rx.Var[str] | str = "", *, label: str | rx.Var,
                 next_on_end: bool = False, **props) -> rx.Component:
    attrs = {"data-video-id": video_id, "onError": RENEW_ON_ERROR}
    if next_on_end:
        attrs["onEnded"] = NEXT_ON_END
    return rx.el.video(
        src=src,
        poster=poster,
        controls=True,
        preload="metadata",
        plays_inline=True,
        aria_label=label,
        key=video_id,
        custom_attrs=attrs,
        **props,
    )
