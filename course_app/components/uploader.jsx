// VideoUploader: a drop zone that sends video files to POST /api/upload with
// XMLHttpRequest (for upload progress), two at a time, retrying transient failures.
// Progress lives in this component's own React state: it never goes through the
// Reflex State, which only hears about finished uploads (onUploaded) and final
// failures (onFailed). Wrapped for Reflex by uploader.py.
import { useState, useRef, useCallback, useEffect } from "react";

const UPLOAD_URL = "/api/upload";
const MAX_PARALLEL = 2;
const MAX_ATTEMPTS = 4;
const BACKOFF_MS = [1000, 2000, 4000]; // before attempts 2, 3 and 4
const MAX_RETRY_AFTER_MS = 60000; // cap on a server's Retry-After
const TICK_MS = 250; // at most ~4 progress redraws per second per file
const SPEED_WINDOW_MS = 2000;
const REMOVE_AFTER_MS = 1500;
const IN_PROGRESS = new Set(["waiting", "uploading", "retrying"]);
const NETWORK_ERROR = "The connection was interrupted.";

const UNITS = [["GB", 1024 ** 3], ["MB", 1024 ** 2], ["KB", 1024]];

// 5 GB, 1.5 GB, 200 MB, 1000 bytes (binary units, like the server's messages).
function formatLimit(bytes) {
  for (const [unit, size] of UNITS) {
    if (bytes >= size) {
      const value = bytes / size;
      const text = Number.isInteger(value) ? String(value) : value.toFixed(1).replace(/\.0$/, "");
      return `${text} ${unit}`;
    }
  }
  return `${bytes} bytes`;
}

function formatSpeed(bytesPerSecond) {
  for (const [unit, size] of UNITS) {
    if (bytesPerSecond >= size) return `${(bytesPerSecond / size).toFixed(1)} ${unit}/s`;
  }
  return `${Math.round(bytesPerSecond)} B/s`;
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function errorMessage(body, status) {
  if (body && typeof body.error === "string" && body.error) return body.error;
  if (body && typeof body.detail === "string" && body.detail) return body.detail;
  return `The upload failed (HTTP ${status}).`;
}

function retryAfterMs(xhr) {
  const seconds = Number(xhr.getResponseHeader("Retry-After"));
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0;
}

function statusText(item) {
  switch (item.status) {
    case "waiting":
      return "Waiting";
    case "uploading":
      return "Uploading";
    case "retrying":
      return `Retrying in ${item.retryIn} s (attempt ${item.attempt} of ${MAX_ATTEMPTS})`;
    case "done":
      return "Uploaded";
    case "cancelled":
      return "Cancelled";
    default:
      return item.error;
  }
}

const styles = {
  root: { display: "flex", flexDirection: "column", gap: "8px" },
  zone: {
    border: "2px dashed var(--gray-a7)",
    borderRadius: "var(--radius-3)",
    padding: "16px",
    display: "flex",
    flexWrap: "wrap",
    alignItems: "center",
    gap: "8px 12px",
    color: "var(--gray-11)",
    fontSize: "var(--font-size-2)",
    transition: "background-color 120ms, border-color 120ms",
  },
  zoneActive: { borderColor: "var(--accent-9)", backgroundColor: "var(--accent-a3)" },
  label: { margin: 0, fontWeight: 500, color: "var(--gray-12)", flexBasis: "100%" },
  primary: {
    border: "none",
    borderRadius: "var(--radius-2)",
    padding: "6px 12px",
    background: "var(--accent-9)",
    color: "var(--accent-contrast)",
    font: "inherit",
    fontWeight: 500,
    cursor: "pointer",
  },
  small: {
    border: "1px solid var(--gray-a6)",
    borderRadius: "var(--radius-2)",
    padding: "2px 8px",
    background: "var(--gray-a2)",
    color: "var(--gray-12)",
    font: "inherit",
    fontSize: "var(--font-size-1)",
    cursor: "pointer",
  },
  list: { listStyle: "none", margin: 0, padding: 0, display: "flex", flexDirection: "column", gap: "6px" },
  row: {
    display: "grid",
    gridTemplateColumns: "minmax(0, 1fr) auto",
    gap: "4px 12px",
    alignItems: "center",
    padding: "8px 10px",
    border: "1px solid var(--gray-a5)",
    borderRadius: "var(--radius-2)",
    fontSize: "var(--font-size-2)",
  },
  name: { overflow: "hidden", textOverflow: "ellipsis", whiteSpace: "nowrap", color: "var(--gray-12)" },
  actions: { display: "flex", gap: "6px", justifyContent: "flex-end" },
  track: { gridColumn: "1 / -1", height: "6px", borderRadius: "3px", background: "var(--gray-a4)", overflow: "hidden" },
  meta: { gridColumn: "1 / -1", display: "flex", gap: "12px", color: "var(--gray-11)", fontSize: "var(--font-size-1)" },
  error: { color: "var(--red-11)" },
};

export function VideoUploader({ courseId, chapterId, maxBytes, label, onUploaded, onFailed, id, className }) {
  const [items, setItems] = useState([]);
  const [dragging, setDragging] = useState(false);
  const inputRef = useRef(null);
  const chooseRef = useRef(null);
  // key -> {file, courseId, chapterId, xhr, timer, ticker, removeTimer, samples, lastTick}
  const runtime = useRef(new Map());
  const counter = useRef(0);
  // Reflex hands over new callback identities on every render: read the latest ones.
  const callbacks = useRef({});
  callbacks.current = { onUploaded, onFailed };

  const patch = useCallback((key, changes) => {
    setItems((prev) => prev.map((item) => (item.key === key ? { ...item, ...changes } : item)));
  }, []);

  const clearTimers = (rt) => {
    clearTimeout(rt.timer);
    clearInterval(rt.ticker);
    rt.timer = rt.ticker = null;
  };

  const remove = (key) => {
    const rt = runtime.current.get(key);
    if (rt) clearTimeout(rt.removeTimer);
    runtime.current.delete(key);
    setItems((prev) => prev.filter((item) => item.key !== key));
  };

  const removeLater = (key) => {
    const rt = runtime.current.get(key);
    if (rt) rt.removeTimer = setTimeout(() => remove(key), REMOVE_AFTER_MS);
  };

  const fail = (key, message, code) => {
    const rt = runtime.current.get(key);
    if (!rt) return;
    clearTimers(rt);
    patch(key, { status: "failed", error: message, speed: 0 });
    callbacks.current.onFailed?.({ filename: rt.file.name, error: message, code });
  };

  const retryOrFail = (key, attempt, message, code, minDelay) => {
    const rt = runtime.current.get(key);
    if (!rt) return;
    if (attempt >= MAX_ATTEMPTS) {
      fail(key, message, code);
      return;
    }
    const delay = Math.min(Math.max(BACKOFF_MS[attempt - 1], minDelay), MAX_RETRY_AFTER_MS);
    const next = attempt + 1;
    let seconds = Math.ceil(delay / 1000);
    patch(key, { status: "retrying", attempt: next, retryIn: seconds, lastError: message, percent: 0, speed: 0 });
    rt.ticker = setInterval(() => {
      seconds = Math.max(1, seconds - 1);
      patch(key, { retryIn: seconds });
    }, 1000);
    rt.timer = setTimeout(() => {
      clearTimers(rt);
      start(key, next);
    }, delay);
  };

  const start = (key, attempt) => {
    const rt = runtime.current.get(key);
    if (!rt || rt.xhr) return;
    const xhr = new XMLHttpRequest();
    rt.xhr = xhr;
    rt.samples = [{ t: performance.now(), loaded: 0 }];
    rt.lastTick = 0;
    patch(key, { status: "uploading", attempt, percent: 0, speed: 0, error: null });

    xhr.upload.onprogress = (event) => {
      if (rt.xhr !== xhr || !event.lengthComputable || !event.total) return;
      const now = performance.now();
      const samples = rt.samples;
      samples.push({ t: now, loaded: event.loaded });
      while (samples.length > 2 && now - samples[1].t >= SPEED_WINDOW_MS) samples.shift();
      const complete = event.loaded >= event.total;
      if (!complete && now - rt.lastTick < TICK_MS) return;
      rt.lastTick = now;
      const seconds = (now - samples[0].t) / 1000;
      patch(key, {
        percent: complete ? 100 : Math.min(99, Math.floor((event.loaded * 100) / event.total)),
        speed: seconds > 0 ? (event.loaded - samples[0].loaded) / seconds : 0,
      });
    };
    xhr.upload.onload = () => {
      if (rt.xhr === xhr) patch(key, { percent: 100, speed: 0 });
    };
    xhr.onload = () => {
      if (rt.xhr !== xhr) return;
      rt.xhr = null;
      const status = xhr.status;
      const body = parseJson(xhr.responseText);
      if (status >= 200 && status < 300) {
        if (body && typeof body === "object") {
          patch(key, { status: "done", percent: 100, speed: 0 });
          callbacks.current.onUploaded?.(body);
          removeLater(key);
        } else {
          fail(key, "The video was sent, but the server's answer could not be read.", status);
        }
      } else if (status === 408 || status === 429 || status >= 500) {
        retryOrFail(key, attempt, errorMessage(body, status), status, retryAfterMs(xhr));
      } else {
        fail(key, errorMessage(body, status), status);
      }
    };
    const lost = (message) => () => {
      if (rt.xhr !== xhr) return; // aborted on purpose
      rt.xhr = null;
      retryOrFail(key, attempt, message, 0, 0);
    };
    xhr.onerror = lost(NETWORK_ERROR);
    xhr.onabort = lost(NETWORK_ERROR);
    xhr.ontimeout = lost("The upload timed out.");

    const form = new FormData();
    form.append("course_id", rt.courseId);
    form.append("chapter_id", rt.chapterId);
    form.append("size", String(rt.file.size));
    form.append("file", rt.file, rt.file.name);
    xhr.open("POST", UPLOAD_URL);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.send(form);
  };

  // Start waiting files, oldest first, while fewer than MAX_PARALLEL are busy.
  useEffect(() => {
    let free = MAX_PARALLEL - items.filter((i) => i.status === "uploading" || i.status === "retrying").length;
    if (free <= 0) return;
    const waiting = items.filter((i) => i.status === "waiting").sort((a, b) => a.order - b.order);
    for (const item of waiting) {
      if (free-- <= 0) break;
      start(item.key, 1);
    }
  }, [items]);

  // Abort everything when the component goes away.
  useEffect(() => {
    const map = runtime.current;
    return () => {
      for (const rt of map.values()) {
        clearTimers(rt);
        clearTimeout(rt.removeTimer);
        const xhr = rt.xhr;
        rt.xhr = null;
        xhr?.abort();
      }
      map.clear();
    };
  }, []);

  const busy = items.some((item) => IN_PROGRESS.has(item.status));
  useEffect(() => {
    if (!busy) return undefined;
    const confirmLeave = (event) => {
      event.preventDefault();
      event.returnValue = "";
    };
    window.addEventListener("beforeunload", confirmLeave);
    return () => window.removeEventListener("beforeunload", confirmLeave);
  }, [busy]);

  const addFiles = (fileList) => {
    const files = Array.from(fileList || []);
    if (files.length === 0) return;
    const tooBig = [];
    const added = files.map((file) => {
      const key = ++counter.current;
      runtime.current.set(key, { file, courseId: String(courseId ?? ""), chapterId: String(chapterId ?? "") });
      const over = maxBytes > 0 && file.size > maxBytes;
      const error = over ? `${file.name} is larger than the ${formatLimit(maxBytes)} limit.` : null;
      if (over) tooBig.push({ filename: file.name, error, code: 413 });
      return {
        key,
        order: key,
        name: file.name,
        status: over ? "failed" : "waiting",
        error,
        canRetry: !over,
        attempt: 1,
        retryIn: 0,
        percent: 0,
        speed: 0,
      };
    });
    setItems((prev) => [...prev, ...added]);
    for (const failure of tooBig) callbacks.current.onFailed?.(failure);
  };

  const cancel = (key) => {
    const rt = runtime.current.get(key);
    if (rt) {
      clearTimers(rt);
      const xhr = rt.xhr;
      rt.xhr = null;
      xhr?.abort();
    }
    patch(key, { status: "cancelled", speed: 0 });
    removeLater(key);
    chooseRef.current?.focus();
  };

  const retry = (key) => {
    patch(key, { status: "waiting", order: ++counter.current, error: null, attempt: 1, percent: 0, speed: 0 });
    chooseRef.current?.focus();
  };

  const dismiss = (key) => {
    remove(key);
    chooseRef.current?.focus();
  };

  const hasFiles = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");
  const onDragOver = (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    if (!dragging) setDragging(true);
  };
  const onDragLeave = (event) => {
    if (!event.currentTarget.contains(event.relatedTarget)) setDragging(false);
  };
  const onDrop = (event) => {
    event.preventDefault();
    setDragging(false);
    addFiles(event.dataTransfer?.files);
  };

  return (
    <div id={id} className={className} style={styles.root}>
      <div
        style={dragging ? { ...styles.zone, ...styles.zoneActive } : styles.zone}
        onDragEnter={onDragOver}
        onDragOver={onDragOver}
        onDragLeave={onDragLeave}
        onDrop={onDrop}
      >
        <p style={styles.label}>{label}</p>
        <button type="button" ref={chooseRef} style={styles.primary} onClick={() => inputRef.current?.click()}>
          Choose videos
        </button>
        <span>or drop video files here</span>
        <input
          ref={inputRef}
          type="file"
          multiple
          accept="video/*"
          aria-label={label}
          tabIndex={-1}
          hidden
          onChange={(event) => {
            addFiles(event.target.files);
            event.target.value = ""; // choosing the same file again fires change again
          }}
        />
      </div>
      {items.length > 0 && (
        <ul style={styles.list}>
          {items.map((item) => {
            const active = item.status === "uploading";
            return (
              <li key={item.key} style={styles.row}>
                <span style={styles.name} title={item.name}>
                  {item.name}
                </span>
                <span style={styles.actions}>
                  {IN_PROGRESS.has(item.status) && (
                    <button type="button" style={styles.small} aria-label={`Cancel upload of ${item.name}`} onClick={() => cancel(item.key)}>
                      Cancel
                    </button>
                  )}
                  {item.status === "failed" && item.canRetry && (
                    <button type="button" style={styles.small} aria-label={`Retry upload of ${item.name}`} onClick={() => retry(item.key)}>
                      Retry
                    </button>
                  )}
                  {item.status === "failed" && (
                    <button type="button" style={styles.small} aria-label={`Dismiss ${item.name}`} onClick={() => dismiss(item.key)}>
                      Dismiss
                    </button>
                  )}
                </span>
                <div
                  role="progressbar"
                  aria-label={`Upload progress of ${item.name}`}
                  aria-valuemin={0}
                  aria-valuemax={100}
                  aria-valuenow={item.percent}
                  style={styles.track}
                >
                  <div
                    style={{
                      width: `${item.percent}%`,
                      height: "100%",
                      background: item.status === "failed" ? "var(--red-9)" : "var(--accent-9)",
                      transition: "width 200ms linear",
                    }}
                  />
                </div>
                <span style={styles.meta}>
                  {item.status === "failed" ? (
                    <span role="alert" style={styles.error}>
                      {item.error}
                    </span>
                  ) : (
                    <span title={item.status === "retrying" ? item.lastError : undefined}>{statusText(item)}</span>
                  )}
                  {active && <span>{item.percent}%</span>}
                  {active && item.percent < 100 && item.speed > 0 && <span>{formatSpeed(item.speed)}</span>}
                </span>
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
}
