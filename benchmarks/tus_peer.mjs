// The reference resumable-upload peer for benchmarks/resumable_uploads.py:
// @tus/server 2.x with @tus/file-store (in a child process of its own, so the server
// and the client do not share one event loop), driven by tus-js-client in Node.
//
//   node benchmarks/tus_peer.mjs --modules benchmarks/.tus --pool POOL --size N \
//        --chunk-size 52428800 --store DIR [--block 1048576] [--shares FIRST:SIZE,FIRST:SIZE,...]
//
// The file is generated while it is sent, byte for byte like the Python benchmark's
// GeneratedFile: block i (1 MiB) is pool block i % 8 (POOL holds the 8 blocks the
// Python side drew) with its first 8 bytes replaced by i (big-endian); block 0 starts
// with the 24-byte MP4 `ftyp` header, followed by the index. With --shares, one
// upload per share runs at the same time (one client, one server): share FIRST:SIZE
// is SIZE bytes whose block numbering starts at FIRST (its first block starts with
// the header, then FIRST). The Python side checks the SHA1 of each file the tus
// server stored.
//
// Protocol on stdout (one JSON object a line):
//   {"event":"ready","server_pid":..,"port":..}   after the server is up and a 2 MiB
//                                                  warm-up upload went through;
//   then it waits for one line on stdin (the Python side takes its memory baseline),
//   {"event":"done","seconds":..,"bytes":..,"uploads":[{"file_id":..,"path":..,"bytes":..,"seconds":..}]}
//   after the timed uploads (seconds: from the start until the last one finished).
// Exit code 0 on success; on failure {"event":"error","message":..} and exit code 1.

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { Readable } from "node:stream";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";

const MP4_HEADER = Buffer.from("00000018667479706d703432000000006d70343269736f6d", "hex");

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i];
    if (!name.startsWith("--")) throw new Error(`unexpected argument ${name}`);
    const key = name.slice(2);
    if (key === "serve") {
      args.serve = true;
      continue;
    }
    args[key] = argv[++i];
  }
  return args;
}

function loader(modulesDir) {
  const require = createRequire(path.join(path.resolve(modulesDir), "package.json"));
  return {
    require,
    importModule: async (name) => import(pathToFileURL(require.resolve(name)).href),
  };
}

function emit(object) {
  process.stdout.write(JSON.stringify(object) + "\n");
}

// The tus server (child process) -------------------------------------------------------

async function serve(args) {
  const { importModule } = loader(args.modules);
  const { Server } = await importModule("@tus/server");
  const { FileStore } = await importModule("@tus/file-store");
  const server = new Server({ path: "/files", datastore: new FileStore({ directory: args.store }) });
  const http = server.listen({ host: "127.0.0.1", port: 0 }, () => {
    emit({ event: "listening", port: http.address().port });
  });
  const stop = () => {
    http.closeAllConnections();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

// The generated file -----------------------------------------------------------------------

function generatedStream(pool, block, size, first = 0) {
  const blocks = pool.length / block;
  const count = Math.ceil(size / block);
  let index = 0;
  return new Readable({
    highWaterMark: block,
    read() {
      if (index >= count) {
        this.push(null);
        return;
      }
      const data = Buffer.allocUnsafe(block);
      const number = first + index;
      pool.copy(data, 0, (number % blocks) * block, (number % blocks + 1) * block);
      if (index === 0) {
        MP4_HEADER.copy(data, 0);
        data.writeBigUInt64BE(BigInt(number), MP4_HEADER.length);
      } else {
        data.writeBigUInt64BE(BigInt(number), 0);
      }
      const remaining = size - index * block;
      index += 1;
      this.push(remaining < block ? data.subarray(0, remaining) : data);
    },
  });
}

function upload(tus, endpoint, source, size, chunkSize) {
  return new Promise((resolve, reject) => {
    const job = new tus.Upload(source, {
      endpoint,
      chunkSize,
      uploadSize: size,
      retryDelays: null, // fail loudly: a benchmark must not hide retries
      storeFingerprintForResuming: false,
      metadata: { filename: "bench.mp4", filetype: "video/mp4" },
      onError: reject,
      onSuccess: () => resolve(job.url),
    });
    job.start();
  });
}

// The client (parent process) ----------------------------------------------------------------

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.serve) return serve(args);

  const size = Number(args.size);
  const chunkSize = Number(args["chunk-size"]);
  const block = Number(args.block || 1024 * 1024);
  const pool = readFileSync(args.pool);
  if (pool.length % block !== 0 || pool.length === 0) throw new Error("the pool must hold whole blocks");
  const { require } = loader(args.modules);
  const tus = require("tus-js-client");

  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--serve", "--modules", args.modules,
    "--store", args.store], { stdio: ["ignore", "pipe", "inherit"] });
  const stopChild = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  };
  process.on("exit", stopChild);
  try {
    const port = await new Promise((resolve, reject) => {
      const lines = createInterface({ input: child.stdout });
      lines.once("line", (line) => resolve(JSON.parse(line).port));
      child.once("exit", (code) => reject(new Error(`the tus server exited with ${code}`)));
    });
    const endpoint = `http://127.0.0.1:${port}/files/`;

    // Warm-up: a small upload, so first-request work does not count.
    await upload(tus, endpoint, generatedStream(pool, block, 2 * block), 2 * block, chunkSize);
    emit({ event: "ready", server_pid: child.pid, client_pid: process.pid, port });

    await new Promise((resolve) => {
      const input = createInterface({ input: process.stdin });
      input.once("line", () => {
        input.close();
        resolve();
      });
    });

    const shares = (args.shares || `0:${size}`).split(",").map((share) => share.split(":").map(Number));
    if (shares.reduce((sum, [, bytes]) => sum + bytes, 0) !== size) {
      throw new Error("the shares do not add up to --size");
    }
    const started = process.hrtime.bigint();
    const uploads = await Promise.all(shares.map(async ([first, bytes]) => {
      const url = await upload(tus, endpoint, generatedStream(pool, block, bytes, first), bytes, chunkSize);
      const fileId = url.split("/").pop();
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      return { file_id: fileId, path: path.join(args.store, fileId), bytes, first_block: first, seconds };
    }));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    emit({ event: "done", seconds, bytes: size, chunk_size: chunkSize, uploads });
  } finally {
    stopChild();
  }
  process.exit(0); // the piped stdio of the child and stdin would keep the loop alive
}

main().catch((error) => {
  emit({ event: "error", message: String(error && error.stack ? error.stack : error) });
  process.exit(1);
});
