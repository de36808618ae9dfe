// Display helpers shared by the uploads views.
export const UNITS = [["GB", 1024 ** 3], ["MB", 1024 ** 2], ["KB", 1024]];

// 5 GB, 1.5 GB, 200 MB, 1000 bytes (binary units, like the server's messages).
export function formatSize(bytes) {
  for (const [unit, size] of UNITS) {
    if (bytes >= size) {
      const value = bytes / size;
      const text = Number.isInteger(value) ? String(value) : value.toFixed(1).replace(/\.0$/, "");
      return `${text} ${unit}`;
    }
  }
  return `${bytes} bytes`;
}

export function formatSpeed(bytesPerSecond) {
  for (const [unit, size] of UNITS) {
    if (bytesPerSecond >= size) return `${(bytesPerSecond / size).toFixed(1)} ${unit}/s`;
  }
  return `${Math.round(bytesPerSecond)} B/s`;
}

export function formatTimeLeft(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.ceil(seconds))} s left`;
  if (seconds < 3600) return `${Math.ceil(seconds / 60)} min left`;
  const hours = Math.floor(seconds / 3600);
  return `${hours} h ${Math.ceil((seconds - hours * 3600) / 60)} min left`;
}

export function percentOf(part, whole) {
  return whole > 0 ? Math.min(100, Math.floor((part * 100) / whole)) : 0;
}

// Hashing ----------------------------------------------------------------------------
