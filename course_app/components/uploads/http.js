// Requests to the resumable upload API, and how their answers read.
export const API = "/api/uploads";
export const MAX_ATTEMPTS = 6;
export const BACKOFF_MS = [1000, 2000, 4000, 8000, 16000]; // before attempts 2..6
export const NETWORK_MESSAGE = "The connection was interrupted.";
const CODE_FOR_STATUS = {
  400: "invalid_input", 401: "unauthorized", 403: "forbidden", 404: "not_found", 408: "timeout", 409: "conflict",
  413: "too_large", 415: "not_a_video", 422: "invalid_input", 429: "rate_limited", 503: "storage_error",
};
export const STALE = Symbol("stale"); // thrown when a paused, cancelled or retried run wakes up

export function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// One XHR as a promise of {status, body, retryAfterMs}; status 0 when the network
// failed. Aborting it on purpose (pause, cancel) rejects with STALE.
export function send({ method, url, json, body, headers, onProgress, track }) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.setRequestHeader("Accept", "application/json");
    for (const [name, value] of Object.entries(headers || {})) xhr.setRequestHeader(name, value);
    if (onProgress) {
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) onProgress(event.loaded);
      };
    }
    xhr.onload = () => {
      const seconds = Number(xhr.getResponseHeader("Retry-After"));
      resolve({
        status: xhr.status,
        body: parseJson(xhr.responseText),
        retryAfterMs: Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0,
      });
    };
    xhr.onerror = () => resolve({ status: 0, body: undefined, retryAfterMs: 0, message: NETWORK_MESSAGE });
    xhr.ontimeout = () => resolve({ status: 0, body: undefined, retryAfterMs: 0, message: "The request timed out." });
    xhr.onabort = () => reject(STALE);
    track?.(xhr);
    if (json !== undefined) {
      xhr.setRequestHeader("Content-Type", "application/json");
      xhr.send(JSON.stringify(json));
    } else {
      xhr.send(body ?? null);
    }
  });
}

export class UploadFailure extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

export function messageOf(res) {
  if (res.body && typeof res.body.error === "string" && res.body.error) return res.body.error;
  if (res.body && typeof res.body.detail === "string" && res.body.detail) return res.body.detail;
  if (res.status === 0) return res.message || NETWORK_MESSAGE;
  return `The upload failed (HTTP ${res.status}).`;
}

export function codeOf(res) {
  if (res.body && typeof res.body.code === "string" && res.body.code) return res.body.code;
  if (res.status === 0) return "network";
  return CODE_FOR_STATUS[res.status] || (res.status >= 500 ? "server_error" : "error");
}

export function isRetryable(res) {
  return res.status === 0 || res.status === 408 || res.status === 429 || res.status >= 500 || res.body?.retryable === true;
}

// The store --------------------------------------------------------------------------
export async function deleteSession(uploadId) {
  for (let number = 1; number <= 3; number++) {
    const res = await send({ method: "DELETE", url: `${API}/${encodeURIComponent(uploadId)}` }).catch(() => ({ status: 0 }));
    if ((res.status >= 200 && res.status < 300) || res.status === 404) return null;
    if (!isRetryable(res)) return new UploadFailure(messageOf(res), codeOf(res));
    await new Promise((resolve) => setTimeout(resolve, BACKOFF_MS[number - 1]));
  }
  return new UploadFailure("The upload could not be cancelled on the server; discard it later.", "network");
}
