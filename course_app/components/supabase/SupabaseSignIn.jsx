// SupabaseSignIn: the log-in page's door for Supabase accounts (rendered only when
// the server has COURSE_SUPABASE_URL).
//
// 1. "Continue with <provider>" (when a provider is configured) goes to Supabase's
//    hosted sign-in: <supabase>/auth/v1/authorize?provider=...&redirect_to=<this page>.
// 2. Supabase sends the browser back here with the session in the URL fragment
//    (#access_token=...&refresh_token=...&expires_in=...). The fragment never reaches
//    a server; this component reads it, removes it from the address bar and history,
//    and posts the access token to /api/auth/supabase as a plain form. The server
//    verifies the token, answers with our own HttpOnly session cookie and a redirect.
//    The refresh token is dropped: our session does not depend on Supabase's.
// A fragment with error_description (a refused or cancelled sign-in) is shown instead.
import { useEffect, useState } from "react";

const box = { display: "flex", flexDirection: "column", gap: "8px", width: "100%" };
const button = {
  display: "block", textAlign: "center", padding: "10px 12px", borderRadius: "8px",
  border: "1px solid var(--gray-7)", color: "var(--gray-12)", textDecoration: "none", fontWeight: 500,
};

function postToken(token, next) {
  const form = document.createElement("form");
  form.method = "post";
  form.action = "/api/auth/supabase";
  for (const [name, value] of [["access_token", token], ["next", next || ""]]) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.appendChild(input);
  }
  document.body.appendChild(form);
  form.submit();
}

function providerName(provider) {
  return provider.charAt(0).toUpperCase() + provider.slice(1);
}

export function SupabaseSignIn({ supabaseUrl, provider }) {
  const [status, setStatus] = useState("");
  const [href, setHref] = useState("");
  useEffect(() => {
    if (!provider || !supabaseUrl) return;
    const next = new URLSearchParams(window.location.search).get("next");
    const back = `${window.location.origin}/login${next ? `?next=${encodeURIComponent(next)}` : ""}`;
    setHref(`${supabaseUrl}/auth/v1/authorize?provider=${encodeURIComponent(provider)}` +
      `&redirect_to=${encodeURIComponent(back)}`);
  }, [supabaseUrl, provider]);
  useEffect(() => {
    const fragment = new URLSearchParams(window.location.hash.slice(1));
    const token = fragment.get("access_token");
    const error = fragment.get("error_description") || fragment.get("error");
    if (!token && !error) return;
    // The tokens leave the address bar and the history entry at once.
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
    if (error) {
      setStatus(`Supabase sign-in failed: ${error}`);
      return;
    }
    setStatus("Signing you in…");
    postToken(token, new URLSearchParams(window.location.search).get("next"));
  }, []);
  return (
    <div style={box}>
      {href ? <a href={href} style={button} data-testid="supabase-sign-in">Continue with {providerName(provider)}</a>
        : null}
      {status ? <p role="status" style={{ margin: 0 }}>{status}</p> : null}
    </div>
  );
}
