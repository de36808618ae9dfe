// The upload manager: a queue of files, each sent through the resumable upload
// API (/api/uploads): a session per file, then its parts in parallel (file.slice,
// at most PARTS_IN_FLIGHT per file, at most FILES_IN_FLIGHT files), then complete.
// The server's ledger knows which parts are confirmed, so a pause, a lost
// connection or a reload loses at most the parts in flight.
//
// It lives at module level, not in a component: uploads keep running while the
// single-page app shows other pages or a chapter is collapsed, and any view
// subscribes to the same store (store.js, useSyncExternalStore). Progress never
// goes through the Reflex State, which only hears about results through the
// course's listener: onUploaded(video), onFailed({filename, error, code, chapter_id})
// and onChanged({chapter_id}) (a session was created, cancelled or discarded).
//
// Before a new file's session is created, its fingerprint (hash.js) is looked up
// among the instructor's own videos (POST /api/videos/duplicates): a match holds the
// file as "duplicate", saying where it already is, until Skip or Upload anyway. A
// failed look-up never stops an upload. A job with replacesVideoId uploads a new
// file for that video (the server swaps it in once processed).
import { fingerprintOf, hex, subtle } from "./hash.js";
import { formatSize } from "./format.js";
import {
  API, BACKOFF_MS, MAX_ATTEMPTS, STALE, UploadFailure, codeOf, deleteSession, isRetryable, messageOf, send,
} from "./http.js";
import { ACTIVE, BUSY, CANCELLABLE, PAUSABLE, emit, findJob, jobs, notify, removeJob, removeLater } from "./store.js";

const FILES_IN_FLIGHT = 2;
const PARTS_IN_FLIGHT = 3;
const MAX_RETRY_AFTER_MS = 60000; // cap on a server's Retry-After
const MAX_COMPLETE_ROUNDS = 3; // "complete" answering missing_parts, then parts sent again
const EXPIRED_MESSAGE = "This upload was cancelled or has expired on the server. Retry to upload the file again.";
const HELD = Symbol("held"); // a duplicate found: the job waits for Skip or Upload anyway

let nextKey = 0;
let creating = Promise.resolve(); // sessions are created one at a time, in queue order

function schedule() {
  let free = FILES_IN_FLIGHT - jobs.filter((job) => ACTIVE.has(job.status)).length;
  for (const job of jobs) {
    if (free <= 0) break;
    if (job.status === "waiting") {
      free--;
      run(job);
    }
  }
}

// Stops everything in flight for this job; a new generation makes late answers stale.
function stopWork(job) {
  job.generation++;
  for (const slot of job.inflight.values()) {
    const xhr = slot.xhr;
    slot.xhr = null;
    xhr?.abort();
  }
  job.inflight.clear();
  for (const timer of job.timers) clearTimeout(timer);
  job.timers.clear();
  job.waits.clear();
  job.queue = [];
  job.speed = 0;
  job.samples = [];
}

function sleep(job, generation, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      job.timers.delete(timer);
      if (job.generation === generation) resolve();
      else reject(STALE);
    }, ms);
    job.timers.add(timer);
  });
}

// Sends with `attempt` until it answers 2xx (or `accept` takes the answer), waiting
// 1, 2, 4, 8, 16 s between attempts on network errors, 408, 429, 5xx and answers
// marked retryable; anything else (or the sixth failure) throws UploadFailure.
async function withRetries(job, generation, what, attempt, { accept, expired } = {}) {
  for (let number = 1; ; number++) {
    const res = await attempt();
    if (job.generation !== generation) throw STALE;
    if ((res.status >= 200 && res.status < 300) || accept?.(res)) return res;
    if (expired && (res.status === 404 || res.status === 409)) throw new UploadFailure(EXPIRED_MESSAGE, "session_expired");
    if (!isRetryable(res) || number >= MAX_ATTEMPTS) throw new UploadFailure(messageOf(res), codeOf(res));
    const delay = Math.min(Math.max(BACKOFF_MS[number - 1], res.retryAfterMs), MAX_RETRY_AFTER_MS);
    job.waits.set(what, { until: performance.now() + delay, attempt: number + 1, message: messageOf(res) });
    notify();
    await sleep(job, generation, delay);
    job.waits.delete(what);
  }
}

function fail(job, error) {
  stopWork(job);
  job.status = "failed";
  job.error = error.message;
  job.code = error.code;
  job.canRetry = true;
  notify();
  emit(job, "onFailed", { filename: job.name, error: error.message, code: error.code });
  schedule();
}

function settle(job, generation, error) {
  if (error === STALE || error === HELD || job.generation !== generation) return;
  if (error instanceof UploadFailure) fail(job, error);
  else {
    console.error(error);
    fail(job, new UploadFailure(`The upload stopped: ${error?.message || error}`, "client_error"));
  }
}

// One file: fingerprint, session (created, or the open one for the same file),
// missing parts, complete.
async function run(job) {
  stopWork(job);
  const generation = job.generation;
  Object.assign(job, { status: "preparing", error: null, code: null, completeRounds: 0 });
  notify();
  const create = () =>
    send({
      method: "POST",
      url: API,
      json: {
        course_id: job.courseId, chapter_id: job.chapterId, filename: job.file.name, size: job.size,
        fingerprint: job.fingerprint, head: job.head, replaces_video_id: job.replacesVideoId || null,
      },
    }).then((res) => {
      // Kept even if the job was paused or cancelled meanwhile (a cancelled one is deleted).
      if (res.status >= 200 && res.status < 300 && res.body?.id) adopt(job, res.body, res.status === 201);
      return res;
    });
  const turn = creating.then(async () => {
    if (job.generation !== generation) throw STALE; // paused or cancelled while queued
    if (!job.fingerprint) {
      try {
        Object.assign(job, await (job.fingerprinting || fingerprintOf(job.file)));
      } catch {
        job.fingerprinting = null;
        throw new UploadFailure(`${job.name} could not be read. Was it moved or deleted? Choose it again.`, "file_unreadable");
      }
    }
    if (job.generation !== generation) throw STALE;
    if (!job.replacesVideoId && !job.allowDuplicate && !job.uploadId) {
      const matches = await duplicatesOf(job);
      if (job.generation !== generation) throw STALE;
      if (matches.length > 0) {
        hold(job, matches);
        throw HELD;
      }
    }
    return create();
  });
  creating = turn.catch(() => undefined);
  try {
    let first = true;
    await withRetries(job, generation, "starting the upload", () => {
      if (!first) return create();
      first = false;
      return turn;
    });
    if (job.generation !== generation) throw STALE;
    job.status = "uploading";
    job.samples = [];
    notify();
    pump(job, generation);
  } catch (error) {
    settle(job, generation, error);
  }
}

// Where the instructor already has this file ([] when nowhere, or when the look-up fails).
async function duplicatesOf(job) {
  const res = await send({ method: "POST", url: "/api/videos/duplicates", json: { fingerprints: [job.fingerprint] } })
    .catch(() => ({ status: 0 }));
  const matches = res.status === 200 && Array.isArray(res.body?.matches) ? res.body.matches : [];
  return matches.filter((m) => m && typeof m.where === "string").map((m) => m.where);
}

function hold(job, places) {
  stopWork(job);
  job.status = "duplicate";
  job.duplicates = places;
  notify();
  schedule();
}

// Takes the session's ledger; a session that came back after a cancel is deleted.
function adopt(job, session, created) {
  if (job.uploadId === session.id && job.status === "cancelled") return;
  job.uploadId = session.id;
  job.videoId = session.video_id || null;
  job.chunkSize = session.chunk_size;
  job.partCount = session.part_count;
  const missing = new Set(session.missing_parts);
  job.confirmed = new Set();
  for (let n = 1; n <= job.partCount; n++) if (!missing.has(n)) job.confirmed.add(n);
  job.confirmedBytes = session.confirmed_bytes;
  if (job.status === "cancelled") {
    deleteSession(session.id).then(() => emit(job, "onChanged", {}));
    return;
  }
  // The same file chosen again: one upload of it is enough.
  const others = jobs.filter((other) => other !== job && other.uploadId === session.id);
  const twin = others.find((other) => BUSY.has(other.status) || other.status === "paused");
  if (twin) {
    stopWork(job);
    removeJob(job);
    resume(twin.key);
    schedule();
    return;
  }
  for (const other of others) if (other.status === "failed") removeJob(other);
  if (created) emit(job, "onChanged", {});
}

function partSize(job, number) {
  return number < job.partCount ? job.chunkSize : job.size - job.chunkSize * (job.partCount - 1);
}

function pump(job, generation) {
  if (job.generation !== generation || job.status !== "uploading") return;
  if (job.queue.length === 0 && job.inflight.size === 0) {
    for (let n = 1; n <= job.partCount; n++) if (!job.confirmed.has(n)) job.queue.push(n);
    if (job.queue.length === 0) {
      complete(job, generation);
      return;
    }
  }
  while (job.inflight.size < PARTS_IN_FLIGHT && job.queue.length > 0) sendPart(job, generation, job.queue.shift());
}

// Part checksums are computed one at a time per file (each reads its part into memory).
function partSha1(job, number, blob) {
  if (!subtle) return Promise.resolve(null);
  if (job.sha1s.has(number)) return Promise.resolve(job.sha1s.get(number));
  const result = job.hashing.then(async () => {
    const sha1 = hex(await subtle.digest("SHA-1", await blob.arrayBuffer()));
    job.sha1s.set(number, sha1);
    return sha1;
  });
  job.hashing = result.catch(() => undefined);
  return result;
}

async function sendPart(job, generation, number) {
  const slot = { xhr: null, loaded: 0 };
  job.inflight.set(number, slot);
  try {
    const start = (number - 1) * job.chunkSize;
    const blob = job.file.slice(start, start + partSize(job, number));
    const sha1 = await partSha1(job, number, blob);
    if (job.generation !== generation) throw STALE;
    await withRetries(job, generation, `part ${number}`, () => {
      slot.loaded = 0;
      return send({
        method: "PUT",
        url: `${API}/${encodeURIComponent(job.uploadId)}/parts/${number}`,
        body: blob,
        headers: sha1 ? { "X-Part-SHA1": sha1 } : {},
        track: (xhr) => {
          slot.xhr = xhr;
        },
        onProgress: (loaded) => {
          if (slot.xhr === null) return;
          job.sent += Math.max(0, loaded - slot.loaded);
          slot.loaded = loaded;
        },
      });
    }, { expired: true });
    job.inflight.delete(number);
    if (!job.confirmed.has(number)) {
      job.confirmed.add(number);
      job.confirmedBytes += blob.size;
    }
    notify();
    pump(job, generation);
  } catch (error) {
    settle(job, generation, error);
  }
}

async function complete(job, generation) {
  job.status = "completing";
  notify();
  try {
    const res = await withRetries(
      job, generation, "finishing",
      () => send({ method: "POST", url: `${API}/${encodeURIComponent(job.uploadId)}/complete`, json: {} }),
      { accept: (r) => r.status === 409 && r.body?.code === "missing_parts", expired: true },
    );
    if (res.status === 409) {
      // The ledger lacks parts this tab thought confirmed: send them again.
      if (++job.completeRounds > MAX_COMPLETE_ROUNDS) throw new UploadFailure(messageOf(res), "missing_parts");
      for (const n of res.body.missing_parts || []) {
        if (job.confirmed.delete(n)) job.confirmedBytes -= partSize(job, n);
      }
      job.status = "uploading";
      notify();
      pump(job, generation);
      return;
    }
    job.status = "done";
    notify();
    emit(job, "onUploaded", res.body && typeof res.body === "object" ? res.body : {});
    removeLater(job);
    schedule();
  } catch (error) {
    settle(job, generation, error);
  }
}

// Actions ------------------------------------------------------------------------------

function addJob(file, { courseId, chapterId, maxBytes, name, fingerprint, head, replacesVideoId }) {
  const job = {
    key: ++nextKey,
    file,
    name: name || file.name,
    size: file.size,
    courseId,
    chapterId,
    replacesVideoId: replacesVideoId || null, // a new file for this video, swapped in once processed
    allowDuplicate: false,
    duplicates: [], // where this file already is, while held as "duplicate"
    status: "waiting",
    error: null,
    code: null,
    canRetry: true,
    fingerprint: fingerprint || null,
    head: head || null,
    uploadId: null,
    videoId: null, // the video row the server made for this upload
    chunkSize: 0,
    partCount: 0,
    confirmed: new Set(),
    confirmedBytes: 0,
    sha1s: new Map(),
    hashing: Promise.resolve(),
    inflight: new Map(),
    queue: [],
    timers: new Set(),
    waits: new Map(),
    generation: 0,
    sent: 0,
    samples: [],
    speed: 0,
    completeRounds: 0,
    removeTimer: null,
    fingerprinting: null,
  };
  if (maxBytes > 0 && file.size > maxBytes) {
    Object.assign(job, { status: "failed", error: `${job.name} is larger than the ${formatSize(maxBytes)} limit.`, code: "too_large", canRetry: false });
  } else if (file.size === 0) {
    Object.assign(job, { status: "failed", error: `${job.name} is empty.`, code: "invalid_input", canRetry: false });
  }
  if (job.status === "waiting" && !job.fingerprint) {
    // Early, so a row of the server's unfinished uploads for this file hides at once.
    job.fingerprinting = fingerprintOf(file);
    job.fingerprinting.then((found) => {
      if (!job.fingerprint) Object.assign(job, found);
      notify();
    }, () => undefined);
  }
  jobs.push(job);
  return job;
}

export function pause(key) {
  const job = findJob(key);
  if (!job || !PAUSABLE.has(job.status)) return;
  stopWork(job);
  job.status = "paused";
  notify();
  schedule();
}

export function resume(key) {
  const job = findJob(key);
  if (!job || job.status !== "paused") return;
  job.status = "waiting";
  notify();
  schedule();
}

export function retry(key) {
  const job = findJob(key);
  if (!job || job.status !== "failed" || !job.canRetry) return;
  job.status = "waiting";
  job.error = job.code = null;
  notify();
  schedule();
}

export function cancel(key) {
  const job = findJob(key);
  if (!job || !CANCELLABLE.has(job.status)) return;
  stopWork(job);
  job.status = "cancelled";
  notify();
  schedule();
  if (job.uploadId) {
    deleteSession(job.uploadId).then((problem) => {
      if (problem) console.warn(problem.message);
      emit(job, "onChanged", {});
      removeLater(job);
    });
  } else {
    removeLater(job);
  }
}

// A held duplicate: "Upload anyway" sends it, "Skip" drops it.
export function uploadAnyway(key) {
  const job = findJob(key);
  if (!job || job.status !== "duplicate") return;
  Object.assign(job, { allowDuplicate: true, status: "waiting", duplicates: [] });
  notify();
  schedule();
}

export function skip(key) {
  const job = findJob(key);
  if (job && job.status === "duplicate") removeJob(job);
}

export function dismiss(key) {
  const job = findJob(key);
  if (job && (job.status === "failed" || job.status === "done" || job.status === "cancelled")) removeJob(job);
}

// Files chosen or dropped for a chapter: queued, and refused at once when too large or empty.
export function addFiles(fileList, { courseId, chapterId, maxBytes, ...extra }) {
  const files = Array.from(fileList || []);
  if (files.length === 0 || !courseId || !chapterId) return [];
  const added = files.map((file) => addJob(file, { courseId, chapterId, maxBytes, ...extra }));
  notify();
  for (const job of added) {
    if (job.status === "failed") emit(job, "onFailed", { filename: job.name, error: job.error, code: job.code });
  }
  schedule();
  return added;
}

// Batch retry from the outline's selection: the failed uploads of these video rows
// that this tab still holds the files of. Returns how many were retried and how many
// of the given failed rows it could not (their files are not in this tab).
export function retryVideos(videoIds) {
  const wanted = new Set(videoIds);
  let retried = 0;
  for (const job of jobs) {
    if (job.videoId && wanted.has(job.videoId) && job.status === "failed" && job.canRetry) {
      wanted.delete(job.videoId);
      retry(job.key);
      retried++;
    } else if (job.videoId && wanted.has(job.videoId) && BUSY.has(job.status)) {
      wanted.delete(job.videoId); // already on its way
    }
  }
  return { retried, missing: [...wanted] };
}
