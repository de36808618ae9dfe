// UploadsPanel: the course's one list of uploads, whichever chapter each file goes
// to and whether that chapter is open: progress, pause/resume/cancel per file and
// for the batch, failures with their code, and the server's unfinished uploads
// (after a reload) with Resume. It also holds the course-wide drop zone, which asks
// which chapter the files go to. Files dropped on a chapter go through OutlineDnd.
import { useEffect, useRef, useState, useSyncExternalStore } from "react";
import { formatSize, formatSpeed, formatTimeLeft, percentOf } from "./format.js";
import { fingerprintOf } from "./hash.js";
import { deleteSession } from "./http.js";
import { addFiles, cancel, dismiss, pause, resume, retry, skip, uploadAnyway } from "./manager.js";
import {
  CANCELLABLE, EMPTY, PAUSABLE, discarded, getServerSnapshot, getSnapshot, listen, subscribe,
} from "./store.js";
import { styles } from "./styles.js";

function statusText(item) {
  switch (item.status) {
    case "waiting":
      return "Waiting";
    case "preparing":
      return "Starting…";
    case "uploading": {
      const parts = [`${item.percent}%`];
      if (item.speed > 0) parts.push(formatSpeed(item.speed));
      if (item.secondsLeft != null && item.speed > 0) parts.push(formatTimeLeft(item.secondsLeft));
      return parts.join(" · ");
    }
    case "paused":
      return `Paused at ${item.percent}%`;
    case "completing":
      return "Finishing…";
    case "done":
      return "Uploaded";
    case "cancelled":
      return "Cancelled";
    case "duplicate":
      return "";
    default:
      return "";
  }
}
function ProgressBar({ name, percent, failed, paused }) {
  return (
    <div
      role="progressbar"
      aria-label={`Upload progress of ${name}`}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={percent}
      style={styles.track}
    >
      <div
        style={{
          width: `${percent}%`,
          height: "100%",
          background: failed ? "var(--red-9)" : paused ? "var(--gray-9)" : "var(--accent-9)",
          transition: "width 200ms linear",
        }}
      />
    </div>
  );
}
function Button({ label, onClick, children, disabled }) {
  return (
    <button type="button" style={styles.small} aria-label={label} onClick={onClick} disabled={disabled}>
      {children}
    </button>
  );
}
function toPending(value) {
  if (!Array.isArray(value)) return EMPTY;
  return value.filter((p) => p && typeof p.id === "string" && typeof p.filename === "string" && p.size > 0);
}

function toChapters(value) {
  return Array.isArray(value) ? value.filter((c) => c && typeof c.id === "string") : EMPTY;
}

export function UploadsPanel({ courseId, maxBytes, chapters, pending, onUploaded, onFailed, onChanged, id, className }) {
  const all = useSyncExternalStore(subscribe, getSnapshot, getServerSnapshot);
  const [dragging, setDragging] = useState(false);
  const [held, setHeld] = useState(null); // files dropped on the course-wide zone, waiting for a chapter
  const [target, setTarget] = useState("");
  const [pendingState, setPendingState] = useState({}); // pending id -> {error, busy, gone}
  const inputRef = useRef(null);
  const chooseRef = useRef(null);
  const resumeInputs = useRef(new Map());
  // Reflex hands over new callback identities on every render: read the latest ones.
  const callbacks = useRef({});
  callbacks.current = { onUploaded, onFailed, onChanged };
  const course = String(courseId ?? "");
  const chapterList = toChapters(chapters);
  const titleOf = new Map(chapterList.map((c, i) => [c.id, `${i + 1}. ${c.title}`]));

  useEffect(() => listen(course, callbacks), [course]);

  const items = all.filter((item) => item.courseId === course);
  // A pending upload is shown only while no upload of this tab is (or may be, until
  // its fingerprint is known) sending the same file.
  const running = (p) =>
    items.some(
      (item) =>
        item.uploadId === p.id ||
        (item.status !== "cancelled" && item.size === p.size && (!item.fingerprint || item.fingerprint === p.fingerprint)),
    );
  const pendingRows = toPending(pending).filter((p) => !discarded.has(p.id) && !pendingState[p.id]?.gone && !running(p));

  const setPendingFor = (pendingId, changes) =>
    setPendingState((prev) => ({ ...prev, [pendingId]: { ...prev[pendingId], ...changes } }));

  const send = (files, chapterId, extra = {}) => addFiles(files, { courseId: course, chapterId, maxBytes, ...extra });

  // Files from the course-wide zone: straight in with one chapter, else ask which.
  const take = (fileList) => {
    const files = Array.from(fileList || []);
    if (files.length === 0) return;
    if (chapterList.length === 1) send(files, chapterList[0].id);
    else {
      setHeld(files);
      setTarget((current) => current || chapterList[0]?.id || "");
    }
  };

  const resumePending = async (p, file) => {
    if (!file) return;
    const wrong = `That is not the same file: choose ${p.filename} (${formatSize(p.size)}).`;
    if (file.size !== p.size) {
      setPendingFor(p.id, { error: wrong });
      return;
    }
    setPendingFor(p.id, { error: null, busy: true });
    try {
      const { fingerprint, head } = await fingerprintOf(file);
      if (fingerprint !== p.fingerprint) {
        setPendingFor(p.id, { error: wrong, busy: false });
        return;
      }
      setPendingFor(p.id, { busy: false });
      send([file], p.chapter_id, { name: p.filename, fingerprint, head, replacesVideoId: p.replaces_video_id || null });
    } catch {
      setPendingFor(p.id, { error: `${file.name} could not be read.`, busy: false });
    }
  };

  const discard = async (p) => {
    setPendingFor(p.id, { error: null, busy: true });
    const problem = await deleteSession(p.id);
    if (problem) {
      setPendingFor(p.id, { error: `${problem.message} (${problem.code})`, busy: false });
      return;
    }
    discarded.add(p.id);
    setPendingFor(p.id, { busy: false, gone: true });
    callbacks.current.onChanged?.({ chapter_id: p.chapter_id });
    chooseRef.current?.focus();
  };

  const afterAction = (action) => (key) => {
    action(key);
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
    take(event.dataTransfer?.files);
  };

  const open = items.filter((item) => item.status !== "done" && item.status !== "cancelled");
  const anyPausable = items.some((item) => PAUSABLE.has(item.status));
  const anyPaused = items.some((item) => item.status === "paused");
  const anyCancellable = items.some((item) => CANCELLABLE.has(item.status));
  const anyRetryable = items.some((item) => item.status === "failed" && item.canRetry);
  const each = (action, test) => () => {
    for (const item of items) if (test(item)) action(item.key);
    chooseRef.current?.focus();
  };

  return (
    <section id={id} className={className} style={styles.root} aria-label="Uploads">
      <div
        style={dragging ? { ...styles.zone, ...styles.zoneActive } : styles.zone}
        onDragEnter={onDragOver}
        onDragOver={onDragOver}
        onDragLeave={onDragLeave}
        onDrop={onDrop}
      >
        <p style={styles.label}>Upload videos</p>
        <button
          type="button"
          ref={chooseRef}
          style={styles.primary}
          disabled={chapterList.length === 0}
          onClick={() => inputRef.current?.click()}
        >
          Choose videos
        </button>
        <span>
          {chapterList.length === 0
            ? "Add a chapter first, then drop video files here or onto a chapter."
            : "or drop video files here, or onto a chapter"}
        </span>
        <input
          ref={inputRef}
          type="file"
          multiple
          accept="video/*"
          aria-label="Choose videos to upload"
          tabIndex={-1}
          hidden
          onChange={(event) => {
            take(event.target.files);
            event.target.value = ""; // choosing the same file again fires change again
          }}
        />
        {held && (
          <div role="group" aria-label="Which chapter?" style={styles.ask}>
            <label>
              {`${held.length} ${held.length === 1 ? "file" : "files"} into `}
              <select aria-label="Chapter for the new videos" value={target} onChange={(e) => setTarget(e.target.value)}>
                {chapterList.map((c, i) => (
                  <option key={c.id} value={c.id}>{`${i + 1}. ${c.title}`}</option>
                ))}
              </select>
            </label>
            <button
              type="button"
              style={styles.primary}
              disabled={!target}
              onClick={() => {
                send(held, target);
                setHeld(null);
              }}
            >
              Upload here
            </button>
            <Button label="Do not upload these files" onClick={() => setHeld(null)}>
              Cancel
            </Button>
          </div>
        )}
      </div>
      {open.length >= 2 && (
        <div style={styles.batch}>
          <Button label="Pause all" onClick={each(pause, (i) => PAUSABLE.has(i.status))} disabled={!anyPausable}>
            Pause all
          </Button>
          <Button label="Resume all" onClick={each(resume, (i) => i.status === "paused")} disabled={!anyPaused}>
            Resume all
          </Button>
          <Button label="Retry all failed" onClick={each(retry, (i) => i.status === "failed" && i.canRetry)} disabled={!anyRetryable}>
            Retry failed
          </Button>
          <Button label="Cancel all" onClick={each(cancel, (i) => CANCELLABLE.has(i.status))} disabled={!anyCancellable}>
            Cancel all
          </Button>
        </div>
      )}
      {(items.length > 0 || pendingRows.length > 0) && (
        <ul style={styles.list} aria-label="Files being uploaded">
          {items.map((item) => (
            <li key={item.key} style={styles.row} data-upload-chapter={item.chapterId}>
              <span style={styles.name} title={item.name}>
                {item.name}
              </span>
              <span style={styles.actions}>
                {PAUSABLE.has(item.status) && (
                  <Button label={`Pause upload of ${item.name}`} onClick={() => afterAction(pause)(item.key)}>
                    Pause
                  </Button>
                )}
                {item.status === "paused" && (
                  <Button label={`Resume upload of ${item.name}`} onClick={() => resume(item.key)}>
                    Resume
                  </Button>
                )}
                {item.status === "failed" && item.canRetry && (
                  <Button label={`Retry upload of ${item.name}`} onClick={() => afterAction(retry)(item.key)}>
                    Retry
                  </Button>
                )}
                {CANCELLABLE.has(item.status) && (item.status !== "failed" || item.uploadId) && (
                  <Button label={`Cancel upload of ${item.name}`} onClick={() => afterAction(cancel)(item.key)}>
                    Cancel
                  </Button>
                )}
                {item.status === "failed" && (
                  <Button label={`Dismiss ${item.name}`} onClick={() => afterAction(dismiss)(item.key)}>
                    Dismiss
                  </Button>
                )}
                {item.status === "duplicate" && (
                  <>
                    <Button label={`Skip ${item.name}`} onClick={() => afterAction(skip)(item.key)}>
                      Skip
                    </Button>
                    <Button label={`Upload ${item.name} anyway`} onClick={() => uploadAnyway(item.key)}>
                      Upload anyway
                    </Button>
                  </>
                )}
              </span>
              <ProgressBar name={item.name} percent={item.percent} failed={item.status === "failed"} paused={item.status === "paused"} />
              <span style={styles.meta}>
                {item.status === "failed" ? (
                  <span role="alert" style={styles.error}>
                    {item.error} <span style={styles.code}>({item.code})</span>
                  </span>
                ) : item.status === "duplicate" ? (
                  <span role="alert">{`You already uploaded this file: ${item.duplicates.join("; ")}.`}</span>
                ) : (
                  <span aria-live="off">{statusText(item)}</span>
                )}
                {item.note && <span>{item.note}</span>}
                {item.replacesVideoId && <span style={styles.where}>Replacing a video's file</span>}
                {titleOf.has(item.chapterId) && <span style={styles.where}>{`Chapter ${titleOf.get(item.chapterId)}`}</span>}
              </span>
            </li>
          ))}
          {pendingRows.map((p) => {
            const percent = percentOf(p.confirmed_bytes || 0, p.size);
            const state = pendingState[p.id] || {};
            return (
              <li key={`pending-${p.id}`} style={styles.row}>
                <span style={styles.name} title={p.filename}>
                  {`${p.filename} — ${percent}% uploaded, paused`}
                </span>
                <span style={styles.actions}>
                  <Button label={`Resume ${p.filename}`} disabled={state.busy} onClick={() => resumeInputs.current.get(p.id)?.click()}>
                    Resume…
                  </Button>
                  <Button label={`Discard ${p.filename}`} disabled={state.busy} onClick={() => discard(p)}>
                    Discard
                  </Button>
                  <input
                    ref={(node) => {
                      if (node) resumeInputs.current.set(p.id, node);
                      else resumeInputs.current.delete(p.id);
                    }}
                    type="file"
                    accept="video/*"
                    aria-label={`Choose ${p.filename} to resume`}
                    tabIndex={-1}
                    hidden
                    onChange={(event) => {
                      resumePending(p, event.target.files?.[0]);
                      event.target.value = "";
                    }}
                  />
                </span>
                <ProgressBar name={p.filename} percent={percent} paused />
                <span style={styles.meta}>
                  {state.error ? (
                    <span role="alert" style={styles.error}>
                      {state.error}
                    </span>
                  ) : (
                    <span>
                      {state.busy ? "Checking the file…" : `Choose ${p.filename} (${formatSize(p.size)}) again to resume.`}
                    </span>
                  )}
                  {titleOf.has(p.chapter_id) && <span style={styles.where}>{`Chapter ${titleOf.get(p.chapter_id)}`}</span>}
                </span>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
