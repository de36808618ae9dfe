// SHA1 helpers and the file fingerprint the server's ledger knows a file by.
export const HEAD_BYTES = 8 * 1024;
const EDGE_BYTES = 1024 * 1024; // the fingerprint reads this much at each end

export const subtle = typeof crypto !== "undefined" && crypto.subtle ? crypto.subtle : null; // null outside secure contexts

export function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

// SHA1 in plain JavaScript, for the fingerprint where crypto.subtle is missing
// (a page served over plain HTTP from another host). Parts then go without a checksum.
export function sha1Fallback(bytes) {
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

export async function sha1Hex(buffer) {
  return subtle ? hex(await subtle.digest("SHA-1", buffer)) : sha1Fallback(new Uint8Array(buffer));
}

export function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

// "v1:<size>:<hex SHA1 of the first 1 MiB followed by the last 1 MiB>" (the two
// overlap in files under 2 MiB: a file under 1 MiB is hashed twice over, as
// file + file). No name in it: a renamed copy of the file still resumes.
export async function fingerprintOf(file) {
  const size = file.size;
  const edges = [file.slice(0, EDGE_BYTES), file.slice(Math.max(0, size - EDGE_BYTES))];
  const sampled = await new Blob(edges).arrayBuffer();
  const head = await file.slice(0, HEAD_BYTES).arrayBuffer();
  return { fingerprint: `v1:${size}:${await sha1Hex(sampled)}`, head: base64(head) };
}

// Requests ---------------------------------------------------------------------------
