"""The log-in page's Supabase door, a local React component (SupabaseSignIn.jsx
beside this file says what it does). Rendered only when Supabase sign-in is on."""

from __future__ import annotations

import reflex as rx

_MODULE = rx.asset("SupabaseSignIn.jsx", shared=True)


class SupabaseSignIn(rx.Component):
    library = _MODULE.importable_path
    tag = "SupabaseSignIn"

    # The project's URL (public) and the hosted sign-in's provider ("" for no button).
    supabase_url: rx.Var[str]
    provider: rx.Var[str]


supabase_sign_in = SupabaseSignIn.create
