// The uploads' store: the list of jobs, what a view sees of each (progress,
// speed, time left, retry notes), who is told when it changes (the views through
// useSyncExternalStore, the course's page through its listener), and the guard
// against leaving the page while work would be lost. It knows nothing of HTTP:
// manager.js changes the jobs and calls notify().
import { percentOf } from "./format.js";
import { MAX_ATTEMPTS } from "./http.js";

const TICK_MS = 400; // progress redraws while anything is active (2.5 per second)
const SPEED_WINDOW_MS = 3000;
const REMOVE_AFTER_MS = 4000; // finished and cancelled rows linger this long
export const ACTIVE = new Set(["preparing", "uploading", "completing"]); // holding one of the file slots
export const BUSY = new Set(["waiting", "preparing", "uploading", "completing"]); // leaving would lose work
export const PAUSABLE = new Set(["waiting", "preparing", "uploading"]);
export const CANCELLABLE = new Set(["waiting", "preparing", "uploading", "paused", "failed"]);

export const jobs = []; // in the order files were added (manager.js adds them)
const listeners = new Set();
const courses = new Map(); // courseId -> ref of {onUploaded, onFailed, onChanged} of the mounted page
export const discarded = new Set(); // pending upload ids discarded here, until the page's list drops them
export const EMPTY = [];
let snapshot = EMPTY;
let ticker = null;
let guarding = false;

export function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function getSnapshot() {
  return snapshot;
}

export function getServerSnapshot() {
  return EMPTY;
}

// The page of a course hears about its uploads' results (the latest callbacks, by ref).
export function listen(courseId, callbacks) {
  courses.set(courseId, callbacks);
  return () => {
    if (courses.get(courseId) === callbacks) courses.delete(courseId);
  };
}

function progressBytes(job) {
  let bytes = job.confirmedBytes;
  for (const slot of job.inflight.values()) bytes += slot.loaded;
  return Math.min(bytes, job.size);
}

function retryNote(job) {
  let soonest = null;
  for (const [what, wait] of job.waits) if (!soonest || wait.until < soonest.until) soonest = { what, ...wait };
  if (!soonest) return "";
  const seconds = Math.max(1, Math.ceil((soonest.until - performance.now()) / 1000));
  return `${soonest.message} Retrying ${soonest.what} in ${seconds} s (attempt ${soonest.attempt} of ${MAX_ATTEMPTS}).`;
}

function viewOf(job) {
  const done = job.status === "done" || job.status === "completing";
  const percent = done ? 100 : Math.min(99, percentOf(progressBytes(job), job.size));
  const left = job.speed > 0 ? (job.size - progressBytes(job)) / job.speed : null;
  return {
    key: job.key,
    name: job.name,
    chapterId: job.chapterId,
    courseId: job.courseId,
    size: job.size,
    status: job.status,
    percent,
    speed: job.status === "uploading" ? job.speed : 0,
    secondsLeft: job.status === "uploading" ? left : null,
    note: job.status === "uploading" || job.status === "preparing" || job.status === "completing" ? retryNote(job) : "",
    error: job.error,
    code: job.code,
    canRetry: job.canRetry,
    uploadId: job.uploadId,
    fingerprint: job.fingerprint,
    replacesVideoId: job.replacesVideoId,
    duplicates: job.duplicates,
  };
}

export function notify() {
  snapshot = jobs.map(viewOf);
  for (const listener of listeners) listener();
  const busy = jobs.some((job) => BUSY.has(job.status));
  if (busy !== guarding && typeof window !== "undefined") {
    guarding = busy;
    if (busy) window.addEventListener("beforeunload", confirmLeave);
    else window.removeEventListener("beforeunload", confirmLeave);
  }
  const active = jobs.some((job) => ACTIVE.has(job.status));
  if (active && !ticker) ticker = setInterval(tick, TICK_MS);
  if (!active && ticker) {
    clearInterval(ticker);
    ticker = null;
  }
}

function confirmLeave(event) {
  event.preventDefault();
  event.returnValue = "";
}

// Speed from the bytes sent over the last few seconds (a part sent again counts).
function tick() {
  const now = performance.now();
  for (const job of jobs) {
    if (job.status !== "uploading") continue;
    const samples = job.samples;
    samples.push({ t: now, sent: job.sent });
    while (samples.length > 2 && now - samples[1].t >= SPEED_WINDOW_MS) samples.shift();
    const seconds = (now - samples[0].t) / 1000;
    job.speed = seconds >= 0.5 ? (job.sent - samples[0].sent) / seconds : 0;
  }
  notify();
}

export function removeJob(job) {
  clearTimeout(job.removeTimer);
  const index = jobs.indexOf(job);
  if (index >= 0) jobs.splice(index, 1);
  notify();
}

export function removeLater(job) {
  clearTimeout(job.removeTimer);
  job.removeTimer = setTimeout(() => removeJob(job), REMOVE_AFTER_MS);
}

export function findJob(key) {
  return jobs.find((job) => job.key === key);
}

export function emit(job, name, payload) {
  // The course's page if it is mounted; with none, the page reloads from the
  // database when it is shown again.
  try {
    courses.get(job.courseId)?.current[name]?.({ chapter_id: job.chapterId, ...payload });
  } catch (error) {
    console.error(error);
  }
}

