import type { AlertSnapshot } from '../schemas/runs.js';

/**
 * How much of an alert a run stores (MAX_LABELS, MAX_LABEL_VALUE, MAX_ALERT_SIZE). Every run keeps
 * its alert, so an alert with huge labels would otherwise be stored, read and answered again and
 * again. An alert over a cap is still taken and its runs created, with what was cut marked:
 *
 * - A label or annotation name longer than `MAX_NAME_BYTES` is dropped with its value.
 * - Labels beyond `maxLabels` are dropped (`alertname` is kept first, then by name, as Alertmanager
 *   orders them); the marker label `__truncated__` says how many (`"12 labels dropped"`). The same
 *   for annotations, with the marker annotation `__truncated__`. Names starting with `__` are
 *   reserved by Prometheus, so the marker names no real label.
 * - A value (and `generatorURL`) over `maxValueBytes` UTF-8 bytes keeps its beginning and ends with
 *   `…[truncated <n> bytes]`, the whole within `maxValueBytes`.
 * - An alert still over `maxAlertBytes` as JSON (as PostgreSQL prints it) has its longest annotation
 *   values shortened first, then `generatorURL`, then its longest label values, then `alertname`,
 *   each only as much as needed; if that is not enough, whole annotations and then labels are dropped.
 *
 * The dedup identity of an alert is Alertmanager's `fingerprint` (a hash of the full label set) and
 * `startsAt`, never the stored labels: two alerts whose labels differ only past a cap are still two
 * alerts with two runs, and matching sees the alert as Alertmanager sent it. Params are rendered from
 * the stored (capped) alert: a cut value renders with its marker, which a remediation's param schema
 * refuses (the run fails `invalid_params`) rather than acting on a value that is not the alert's.
 */
export interface AlertCaps {
  /** Labels kept of an alert (and, separately, annotations), the marker not counted. */
  maxLabels: number;
  /** UTF-8 bytes of one value, its marker included. */
  maxValueBytes: number;
  /** Bytes of the stored alert as JSON. */
  maxAlertBytes: number;
}

export const DEFAULT_ALERT_CAPS: AlertCaps = { maxLabels: 64, maxValueBytes: 4096, maxAlertBytes: 64 * 1024 };

/** A label or annotation name longer than this is dropped with its value. */
export const MAX_NAME_BYTES = 256;
/** The label (and annotation) saying how many entries were dropped. */
export const TRUNCATED_KEY = '__truncated__';
/** What a cut value ends with: how many bytes of it are not stored. */
export const truncationMarker = (bytes: number): string => `…[truncated ${bytes} bytes]`;

const utf8 = (s: string) => Buffer.byteLength(s, 'utf8');
const jsonBytes = (s: string) => utf8(JSON.stringify(s));
/** One `"name": "value", ` of an object as PostgreSQL prints jsonb (a space after `:` and `,`). */
const entryBytes = (key: string, value: string) => jsonBytes(key) + jsonBytes(value) + 4;
/** Values this short are not worth shortening to make an alert fit. */
const SHORT_VALUE = 64;

/** `value` within `maxBytes` UTF-8 bytes: its beginning (whole characters) and the marker, or itself when it fits. */
export function cutValue(value: string, maxBytes: number): string {
  const total = utf8(value);
  if (total <= maxBytes) return value;
  // The marker of the whole length is at least as long as that of what is dropped.
  let keep = Math.max(0, maxBytes - utf8(truncationMarker(total)));
  // Each UTF-16 code unit is at least one UTF-8 byte: this many units hold the bytes kept.
  const head = Buffer.from(value.slice(0, keep + 1), 'utf8');
  keep = Math.min(keep, head.length);
  while (keep > 0 && (head[keep]! & 0xc0) === 0x80) keep--;
  return `${head.subarray(0, keep).toString('utf8')}${truncationMarker(total - keep)}`;
}

interface Entry {
  key: string;
  value: string;
  bytes: number;
}

/** Entries of one map with names that fit, in the order they are kept: `first` (if present), then by name. */
function entries(map: Record<string, string>, first?: string): { kept: Entry[]; dropped: number } {
  const keys = Object.keys(map).sort((a, b) => (a === first ? -1 : b === first ? 1 : a < b ? -1 : a > b ? 1 : 0));
  const kept: Entry[] = [];
  let dropped = 0;
  for (const key of keys) {
    if (utf8(key) > MAX_NAME_BYTES) dropped++;
    else kept.push({ key, value: map[key]!, bytes: 0 });
  }
  return { kept, dropped };
}

/**
 * Whether `alert` is within `caps` by a bound that needs no encoding: a UTF-16 code unit is at most
 * 3 UTF-8 bytes, and at most 6 bytes as JSON (`\u001f`). Nearly every alert is far within the caps;
 * the exact measure is for the others.
 */
function surelyFits(alert: AlertSnapshot, caps: AlertCaps): boolean {
  // The fields other than the maps, their names, quotes and separators.
  let json = 128 + 6 * (alert.fingerprint.length + alert.status.length + alert.startsAt.length + (alert.endsAt?.length ?? 0));
  if (alert.generatorURL !== undefined) {
    if (3 * alert.generatorURL.length > caps.maxValueBytes) return false;
    json += 6 * alert.generatorURL.length;
  }
  for (const map of [alert.labels, alert.annotations]) {
    let count = 0;
    for (const key in map) {
      const value = map[key]!;
      if (3 * key.length > MAX_NAME_BYTES || 3 * value.length > caps.maxValueBytes) return false;
      // `"key": "value", `
      json += 6 * (key.length + value.length) + 8;
      count++;
    }
    if (count > caps.maxLabels) return false;
  }
  return json <= caps.maxAlertBytes;
}

/** The alert as a run stores it, within `caps`; `truncated` says whether anything was cut. */
export function capAlert(alert: AlertSnapshot, caps: AlertCaps): { alert: AlertSnapshot; truncated: boolean } {
  if (surelyFits(alert, caps)) return { alert, truncated: false };
  let truncated = false;
  const maps = {
    labels: { ...entries(alert.labels, 'alertname'), noun: 'labels' },
    annotations: { ...entries(alert.annotations), noun: 'annotations' },
  };
  for (const map of Object.values(maps)) {
    if (map.kept.length > caps.maxLabels) {
      map.dropped += map.kept.length - caps.maxLabels;
      map.kept.length = caps.maxLabels;
    }
    for (const e of map.kept) {
      const cut = cutValue(e.value, caps.maxValueBytes);
      if (cut !== e.value) truncated = true;
      e.value = cut;
      e.bytes = entryBytes(e.key, e.value);
    }
    if (map.dropped > 0) truncated = true;
  }
  const generator =
    alert.generatorURL !== undefined
      ? { key: 'generatorURL', value: cutValue(alert.generatorURL, caps.maxValueBytes), bytes: 0 }
      : undefined;
  if (generator) {
    if (generator.value !== alert.generatorURL) truncated = true;
    generator.bytes = entryBytes(generator.key, generator.value);
  }

  const marker = (dropped: number, noun: string) => `${dropped} ${dropped === 1 ? noun.slice(0, -1) : noun} dropped`;
  const markerBytes = (map: { dropped: number; noun: string }) =>
    map.dropped > 0 ? entryBytes(TRUNCATED_KEY, marker(map.dropped, map.noun)) : 0;
  const fixed = { ...alert, labels: {}, annotations: {} } as Partial<AlertSnapshot>;
  delete fixed.generatorURL;
  // The fields other than labels, annotations and generatorURL, as PostgreSQL prints them; `"generatorURL": ...` is an entry.
  const base = utf8(JSON.stringify(fixed)) + 2 * Object.keys(fixed).length + 2;
  const sum = (list: Entry[]) => list.reduce((n, e) => n + e.bytes, 0);
  const size = () =>
    base +
    sum(maps.labels.kept) +
    sum(maps.annotations.kept) +
    (generator?.bytes ?? 0) +
    markerBytes(maps.labels) +
    markerBytes(maps.annotations);

  if (size() > caps.maxAlertBytes) {
    truncated = true;
    const byLength = (list: Entry[]) => [...list].sort((a, b) => b.bytes - a.bytes);
    const alertname = maps.labels.kept.find((e) => e.key === 'alertname');
    const order = [
      ...byLength(maps.annotations.kept),
      ...(generator ? [generator] : []),
      ...byLength(maps.labels.kept.filter((e) => e !== alertname)),
      ...(alertname ? [alertname] : []),
    ];
    // Shorten values, the longest first, each by what is still too much.
    for (const e of order) {
      const excess = size() - caps.maxAlertBytes;
      if (excess <= 0) break;
      const bytes = utf8(e.value);
      if (bytes <= SHORT_VALUE) continue;
      e.value = cutValue(e.value, Math.max(SHORT_VALUE, bytes - excess));
      e.bytes = entryBytes(e.key, e.value);
    }
    // Still too big (many long names): drop whole entries, annotations first, the biggest first.
    for (const [map, list] of [
      [maps.annotations, byLength(maps.annotations.kept)],
      [maps.labels, byLength(maps.labels.kept.filter((e) => e !== alertname))],
    ] as const) {
      for (const e of list) {
        if (size() <= caps.maxAlertBytes) break;
        map.kept.splice(map.kept.indexOf(e), 1);
        map.dropped++;
      }
    }
    if (generator && size() > caps.maxAlertBytes) {
      generator.value = truncationMarker(utf8(generator.value));
      generator.bytes = entryBytes(generator.key, generator.value);
    }
  }
  if (!truncated) return { alert, truncated };

  const build = (map: { kept: Entry[]; dropped: number; noun: string }) => {
    const out: Record<string, string> = {};
    for (const e of map.kept) out[e.key] = e.value;
    // Ours replaces a marker the alert itself carried.
    if (map.dropped > 0) out[TRUNCATED_KEY] = marker(map.dropped, map.noun);
    return out;
  };
  return {
    alert: {
      fingerprint: alert.fingerprint,
      status: alert.status,
      startsAt: alert.startsAt,
      ...(alert.endsAt !== undefined ? { endsAt: alert.endsAt } : {}),
      ...(generator ? { generatorURL: generator.value } : {}),
      labels: build(maps.labels),
      annotations: build(maps.annotations),
    },
    truncated,
  };
}

/** The size `capAlert` bounds: the alert as JSON with the spaces PostgreSQL prints after `:` and `,`. */
export function storedAlertBytes(alert: AlertSnapshot): number {
  const json = JSON.stringify(alert);
  const entries = Object.keys(alert).length + Object.keys(alert.labels).length + Object.keys(alert.annotations).length;
  return utf8(json) + 2 * entries;
}
