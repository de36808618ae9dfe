// VideoUploader: a drop zone that sends video files through the resumable upload
// API (/api/uploads): a session per file, then its parts in parallel (file.slice,
// at most PARTS_IN_FLIGHT per file, at most FILES_IN_FLIGHT files), then complete.
// The server's ledger knows which parts are confirmed, so a pause, a lost
// connection or a reload loses at most the parts in flight.
//
// The upload manager (queue, XHRs, progress) lives at module level, not in the
// component: uploads keep running while the single-page app shows other pages, and
// a remounted uploader subscribes again and shows the live state. Progress never
// goes through the Reflex State, which only hears about results: onUploaded(video),
// onFailed({filename, error, code}) and onChanged({}) (a session was created,
// cancelled or discarded). Wrapped for Reflex by uploader.py.
import { useState, useRef, useEffect, useSyncExternalStore } from "react";

const API = "/api/uploads";
const FILES_IN_FLIGHT = 2;
const PARTS_IN_FLIGHT = 3;
const MAX_ATTEMPTS = 6;
const BACKOFF_MS = [1000, 2000, 4000, 8000, 16000]; // before attempts 2..6
const MAX_RETRY_AFTER_MS = 60000; // cap on a server's Retry-After
const MAX_COMPLETE_ROUNDS = 3; // "complete" answering missing_parts, then parts sent again
const TICK_MS = 400; // progress redraws while anything is active (2.5 per second)
const SPEED_WINDOW_MS = 3000;
const REMOVE_AFTER_MS = 4000; // finished and cancelled rows linger this long
const HEAD_BYTES = 8 * 1024;
const EDGE_BYTES = 1024 * 1024; // the fingerprint reads this much at each end
const ACTIVE = new Set(["preparing", "uploading", "completing"]); // holding one of the file slots
const BUSY = new Set(["waiting", "preparing", "uploading", "completing"]); // leaving would lose work
const PAUSABLE = new Set(["waiting", "preparing", "uploading"]);
const CANCELLABLE = new Set(["waiting", "preparing", "uploading", "paused", "failed"]);
const EXPIRED_MESSAGE = "This upload was cancelled or has expired on the server. Retry to upload the file again.";
const NETWORK_MESSAGE = "The connection was interrupted.";
const CODE_FOR_STATUS = {
  400: "invalid_input", 401: "unauthorized", 403: "forbidden", 404: "not_found", 408: "timeout", 409: "conflict",
  413: "too_large", 415: "not_a_video", 422: "invalid_input", 429: "rate_limited", 503: "storage_error",
};
const STALE = Symbol("stale"); // thrown when a paused, cancelled or retried run wakes up

const UNITS = [["GB", 1024 ** 3], ["MB", 1024 ** 2], ["KB", 1024]];

// Formatting -----------------------------------------------------------------------

// 5 GB, 1.5 GB, 200 MB, 1000 bytes (binary units, like the server's messages).
function formatSize(bytes) {
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

function formatTimeLeft(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.ceil(seconds))} s left`;
  if (seconds < 3600) return `${Math.ceil(seconds / 60)} min left`;
  const hours = Math.floor(seconds / 3600);
  return `${hours} h ${Math.ceil((seconds - hours * 3600) / 60)} min left`;
}

function percentOf(part, whole) {
  return whole > 0 ? Math.min(100, Math.floor((part * 100) / whole)) : 0;
}

// Hashing ----------------------------------------------------------------------------

const subtle = typeof crypto !== "undefined" && crypto.subtle ? crypto.subtle : null; // null outside secure contexts

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

// SHA1 in plain JavaScript, for the fingerprint where crypto.subtle is missing
// (a page served over plain HTTP from another host). Parts then go without a checksum.
function sha1Fallback(bytes) {
  const length = bytes.length;
  const padded = (((length + 8) >> 6) + 1) << 6;
  const buf = new Uint8Array(padded);
  buf.set(bytes);
  buf[length] = 0x80;
  const view = new DataView(buf.buffer);
  view.setUint32(padded - 8, Math.floor(length / 0x20000000));
  view.setUint32(padded - 4, (length * 8) >>> 0);
  const h = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];
  const w = new Uint32Array(80);
  for (let offset = 0; offset < padded; offset += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(offset + i * 4);
    for (let i = 16; i < 80; i++) {
      const x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16];
      w[i] = (x << 1) | (x >>> 31);
    }
    let [a, b, c, d, e] = h;
    for (let i = 0; i < 80; i++) {
      let f, k;
      if (i < 20) [f, k] = [(b & c) | (~b & d), 0x5a827999];
      else if (i < 40) [f, k] = [b ^ c ^ d, 0x6ed9eba1];
      else if (i < 60) [f, k] = [(b & c) | (b & d) | (c & d), 0x8f1bbcdc];
      else [f, k] = [b ^ c ^ d, 0xca62c1d6];
      const t = (((a << 5) | (a >>> 27)) + f + e + k + w[i]) >>> 0;
      e = d;
      d = c;
      c = ((b << 30) | (b >>> 2)) >>> 0;
      b = a;
      a = t;
    }
    h[0] = (h[0] + a) >>> 0;
    h[1] = (h[1] + b) >>> 0;
    h[2] = (h[2] + c) >>> 0;
    h[3] = (h[3] + d) >>> 0;
    h[4] = (h[4] + e) >>> 0;
  }
  return h.map((x) => x.toString(16).padStart(8, "0")).join("");
}

async function sha1Hex(buffer) {
  return subtle ? hex(await subtle.digest("SHA-1", buffer)) : sha1Fallback(new Uint8Array(buffer));
}

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

// "v1:<size>:<hex SHA1 of the first 1 MiB followed by the last 1 MiB>" (the two
// overlap in files under 2 MiB: a file under 1 MiB is hashed twice over, as
// file + file). No name in it: a renamed copy of the file still resumes.
async function fingerprintOf(file) {
  const size = file.size;
  const edges = [file.slice(0, EDGE_BYTES), file.slice(Math.max(0, size - EDGE_BYTES))];
  const sampled = await new Blob(edges).arrayBuffer();
  const head = await file.slice(0, HEAD_BYTES).arrayBuffer();
  return { fingerprint: `v1:${size}:${await sha1Hex(sampled)}`, head: base64(head) };
}

// Requests ---------------------------------------------------------------------------

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// One XHR as a promise of {status, body, retryAfterMs}; status 0 when the network
// failed. Aborting it on purpose (pause, cancel) rejects with STALE.
function send({ method, url, json, body, headers, onProgress, track }) {
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

class UploadFailure extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

function messageOf(res) {
  if (res.body && typeof res.body.error === "string" && res.body.error) return res.body.error;
  if (res.body && typeof res.body.detail === "string" && res.body.detail) return res.body.detail;
  if (res.status === 0) return res.message || NETWORK_MESSAGE;
  return `The upload failed (HTTP ${res.status}).`;
}

function codeOf(res) {
  if (res.body && typeof res.body.code === "string" && res.body.code) return res.body.code;
  if (res.status === 0) return "network";
  return CODE_FOR_STATUS[res.status] || (res.status >= 500 ? "server_error" : "error");
}

function isRetryable(res) {
  return res.status === 0 || res.status === 408 || res.status === 429 || res.status >= 500 || res.body?.retryable === true;
}

// The store --------------------------------------------------------------------------

const jobs = []; // in the order files were added
const listeners = new Set();
const mounts = new Set(); // {chapterId, courseId, callbacks: ref} of mounted uploaders
const discarded = new Set(); // pending upload ids discarded here, until the page's list drops them
const EMPTY = [];
let snapshot = EMPTY;
let nextKey = 0;
let ticker = null;
let guarding = false;
let creating = Promise.resolve(); // sessions are created one at a time, in queue order

function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function getSnapshot() {
  return snapshot;
}

function getServerSnapshot() {
  return EMPTY;
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
  };
}

function notify() {
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

function emit(job, name, payload) {
  // The uploader of the job's chapter if it is mounted, else any of the same course;
  // with none mounted the page reloads from the database when it is shown again.
  let target = null;
  for (const mount of mounts) {
    if (mount.chapterId === job.chapterId) target = mount;
    else if (!target && mount.courseId === job.courseId) target = mount;
  }
  try {
    target?.callbacks.current[name]?.(payload);
  } catch (error) {
    console.error(error);
  }
}

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

function removeJob(job) {
  clearTimeout(job.removeTimer);
  const index = jobs.indexOf(job);
  if (index >= 0) jobs.splice(index, 1);
  notify();
}

function removeLater(job) {
  clearTimeout(job.removeTimer);
  job.removeTimer = setTimeout(() => removeJob(job), REMOVE_AFTER_MS);
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
  if (error === STALE || job.generation !== generation) return;
  if (error instanceof UploadFailure) fail(job, error);
  else {
    console.error(error);
    fail(job, new UploadFailure(`The upload stopped: ${error?.message || error}`, "client_error"));
  }
}

async function deleteSession(uploadId) {
  for (let number = 1; number <= 3; number++) {
    const res = await send({ method: "DELETE", url: `${API}/${encodeURIComponent(uploadId)}` }).catch(() => ({ status: 0 }));
    if ((res.status >= 200 && res.status < 300) || res.status === 404) return null;
    if (!isRetryable(res)) return new UploadFailure(messageOf(res), codeOf(res));
    await new Promise((resolve) => setTimeout(resolve, BACKOFF_MS[number - 1]));
  }
  return new UploadFailure("The upload could not be cancelled on the server; discard it later.", "network");
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
        fingerprint: job.fingerprint, head: job.head,
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

// Takes the session's ledger; a session that came back after a cancel is deleted.
function adopt(job, session, created) {
  if (job.uploadId === session.id && job.status === "cancelled") return;
  job.uploadId = session.id;
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

function addJob(file, { courseId, chapterId, maxBytes, name, fingerprint, head }) {
  const job = {
    key: ++nextKey,
    file,
    name: name || file.name,
    size: file.size,
    courseId,
    chapterId,
    status: "waiting",
    error: null,
    code: null,
    canRetry: true,
    fingerprint: fingerprint || null,
    head: head || null,
    uploadId: null,
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

function findJob(key) {
  return jobs.find((job) => job.key === key);
}

function pause(key) {
  const job = findJob(key);
  if (!job || !PAUSABLE.has(job.status)) return;
  stopWork(job);
  job.status = "paused";
  notify();
  schedule();
}

function resume(key) {
  const job = findJob(key);
  if (!job || job.status !== "paused") return;
  job.status = "waiting";
  notify();
  schedule();
}

function retry(key) {
  const job = findJob(key);
  if (!job || job.status !== "failed" || !job.canRetry) return;
  job.status = "waiting";
  job.error = job.code = null;
  notify();
  schedule();
}

function cancel(key) {
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

function dismiss(key) {
  const job = findJob(key);
  if (job && (job.status === "failed" || job.status === "done" || job.status === "cancelled")) removeJob(job);
}

// The component ---------------------------------------------------------------------

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
    default:
      return "";
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
  batch: { display: "flex", gap: "6px", justifyContent: "flex-end" },
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
  meta: { gridColumn: "1 / -1", display: "flex", flexWrap: "wrap", gap: "4px 12px", color: "var(--gray-11)", fontSize: "var(--font-size-1)" },
  error: { color: "var(--red-11)" },
  code: { fontFamily: "var(--code-font-family, monospace)" },
};

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

export function VideoUploader({ courseId, chapterId, maxBytes, label, pending, onUploaded, onFailed, onChanged, id, className }) {
  const all = useSyncExternalStore(subscribe, getSnapshot, getServerSnapshot);
  const [dragging, setDragging] = useState(false);
  const [pendingState, setPendingState] = useState({}); // pending id -> {error, busy}
  const inputRef = useRef(null);
  const chooseRef = useRef(null);
  const resumeInputs = useRef(new Map());
  // Reflex hands over new callback identities on every render: read the latest ones.
  const callbacks = useRef({});
  callbacks.current = { onUploaded, onFailed, onChanged };
  const chapter = String(chapterId ?? "");
  const course = String(courseId ?? "");

  useEffect(() => {
    const mount = { chapterId: chapter, courseId: course, callbacks };
    mounts.add(mount);
    return () => mounts.delete(mount);
  }, [chapter, course]);

  const items = all.filter((item) => item.chapterId === chapter);
  // A pending upload is shown here only while no upload of this tab is (or may be,
  // until its fingerprint is known) sending the same file.
  const running = (p) =>
    items.some(
      (item) =>
        item.uploadId === p.id ||
        (item.status !== "cancelled" && item.size === p.size && (!item.fingerprint || item.fingerprint === p.fingerprint)),
    );
  const pendingRows = toPending(pending).filter((p) => !discarded.has(p.id) && !pendingState[p.id]?.gone && !running(p));

  const setPendingFor = (pendingId, changes) =>
    setPendingState((prev) => ({ ...prev, [pendingId]: { ...prev[pendingId], ...changes } }));

  const addFiles = (fileList, extra = {}) => {
    const files = Array.from(fileList || []);
    if (files.length === 0) return;
    const added = files.map((file) => addJob(file, { courseId: course, chapterId: chapter, maxBytes, ...extra }));
    notify();
    for (const job of added) {
      if (job.status === "failed") callbacks.current.onFailed?.({ filename: job.name, error: job.error, code: job.code });
    }
    schedule();
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
      addFiles([file], { name: p.filename, fingerprint, head });
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
    callbacks.current.onChanged?.({});
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
    addFiles(event.dataTransfer?.files);
  };

  const open = items.filter((item) => item.status !== "done" && item.status !== "cancelled");
  const anyPausable = items.some((item) => PAUSABLE.has(item.status));
  const anyPaused = items.some((item) => item.status === "paused");
  const anyCancellable = items.some((item) => CANCELLABLE.has(item.status));
  const each = (action, statuses) => () => {
    for (const item of items) if (statuses.has(item.status)) action(item.key);
    chooseRef.current?.focus();
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
      {open.length >= 2 && (
        <div style={styles.batch}>
          <Button label="Pause all" onClick={each(pause, PAUSABLE)} disabled={!anyPausable}>
            Pause all
          </Button>
          <Button label="Resume all" onClick={each(resume, new Set(["paused"]))} disabled={!anyPaused}>
            Resume all
          </Button>
          <Button label="Cancel all" onClick={each(cancel, CANCELLABLE)} disabled={!anyCancellable}>
            Cancel all
          </Button>
        </div>
      )}
      {(items.length > 0 || pendingRows.length > 0) && (
        <ul style={styles.list}>
          {items.map((item) => (
            <li key={item.key} style={styles.row}>
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
              </span>
              <ProgressBar name={item.name} percent={item.percent} failed={item.status === "failed"} paused={item.status === "paused"} />
              <span style={styles.meta}>
                {item.status === "failed" ? (
                  <span role="alert" style={styles.error}>
                    {item.error} <span style={styles.code}>({item.code})</span>
                  </span>
                ) : (
                  <span aria-live="off">{statusText(item)}</span>
                )}
                {item.note && <span>{item.note}</span>}
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
                </span>
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
}
