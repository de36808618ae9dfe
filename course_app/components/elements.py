"""Two small HTML elements Reflex does not offer as such."""

from __future__ import annotations

import reflex as rx
from reflex_base.components.component import field
from reflex_base.event import no_args_event_spec
from reflex_base.vars.base import Var
from reflex_base.vars.function import FunctionStringVar
from reflex_components_core.el.elements.base import BaseHTML


class PostForm(BaseHTML):
    """A plain HTML form that the browser submits itself (rx.el.form always
    prevents the default submission). Used for log-in, sign-up and log-out, whose
    routes answer with an HttpOnly cookie and a redirect."""

    tag = "form"
    action: Var[str] = field(doc="Where the form posts")
    method: Var[str] = field(doc="HTTP method")


class DragItem(BaseHTML):
    """A list item that takes part in HTML drag and drop."""

    tag = "li"
    draggable: Var[bool] = field(doc="Whether the item can be dragged")
    on_drag_start: rx.EventHandler[no_args_event_spec] = field(doc="Drag started on this item")
    on_drag_over: rx.EventHandler[no_args_event_spec] = field(doc="Something is dragged over this item")
    on_drop: rx.EventHandler[no_args_event_spec] = field(doc="Something was dropped on this item")


post_form = PostForm.create
drag_item = DragItem.create


# Enter in an inline-edit field saves it the same way leaving the field does: by blurring it
# (the field's on_blur handler then persists). Runs in the browser; no round trip.
BLUR_ON_ENTER = FunctionStringVar.create(
    "(key, _info, event) => { if (key === 'Enter') { event.preventDefault(); event.target.blur(); } }"
)
