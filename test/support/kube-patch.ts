/**
 * The three patch formats a Kubernetes API server accepts, as far as the stand-in needs them.
 * Strategic merge knows the merge keys of the pod template lists (the real server reads them from
 * the Go struct tags); every other list is replaced whole, as the server does for atomic lists.
 */

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

export class PatchError extends Error {}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
const clone = <T>(v: T): T => structuredClone(v);

/** RFC 7386. */
export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k] ?? null, v);
  }
  return out;
}

/** Merge keys of `patchStrategy:"merge"` lists in core/v1 and apps/v1 (k8s.io/api struct tags). */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  ports: 'containerPort',
  imagePullSecrets: 'name',
  conditions: 'type',
};

/** Strategic merge patch: maps merge, lists with a merge key merge by it, `$patch` and `$setElementOrder` directives. */
export function strategicMergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  if (patch['$patch'] === 'replace') {
    const { $patch: _, ...rest } = patch;
    return clone(rest);
  }
  if (patch['$patch'] === 'delete') return null;
  const out: JsonObject = isObject(target) ? clone(target) : {};
  const orders: Array<[string, Json[]]> = [];
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$setElementOrder/')) {
      orders.push([k.slice('$setElementOrder/'.length), Array.isArray(v) ? v : []]);
      continue;
    }
    if (k.startsWith('$')) continue; // $retainKeys and friends: accepted, not needed by the stand-in
    if (v === null) {
      delete out[k];
      continue;
    }
    const key = MERGE_KEYS[k];
    const current = out[k];
    if (key && Array.isArray(v) && (Array.isArray(current) || current === undefined)) {
      out[k] = mergeList(current ?? [], v, key);
    } else {
      out[k] = strategicMergePatch(current ?? null, v);
    }
  }
  for (const [k, order] of orders) {
    const key = MERGE_KEYS[k];
    const list = out[k];
    if (key && Array.isArray(list)) out[k] = reorder(list, order, key);
  }
  return out;
}

function mergeList(current: Json[], patch: Json[], key: string): Json[] {
  const out = clone(current);
  for (const item of patch) {
    if (!isObject(item) || item[key] === undefined)
      throw new PatchError(`map: ${JSON.stringify(item)} does not contain declared merge key: ${key}`);
    const at = out.findIndex((c) => isObject(c) && c[key] === item[key]);
    if (item['$patch'] === 'delete') {
      if (at >= 0) out.splice(at, 1);
    } else if (at >= 0) {
      out[at] = strategicMergePatch(out[at] ?? null, item);
    } else {
      out.push(strategicMergePatch(null, item));
    }
  }
  return out;
}

/** Items named in `$setElementOrder` come first in that order; the others keep their relative order after them. */
function reorder(list: Json[], order: Json[], key: string): Json[] {
  const keyOf = (v: Json) => (isObject(v) ? v[key] : undefined);
  const wanted = order.map(keyOf);
  const ordered = wanted.flatMap((w) => list.filter((item) => keyOf(item) === w));
  return [...ordered, ...list.filter((item) => !wanted.includes(keyOf(item)))];
}

/** RFC 6902: add, remove, replace, test. */
export function jsonPatch(target: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw new PatchError('json patch must be an array of operations');
  let doc = clone(target);
  for (const op of ops) {
    if (!isObject(op) || typeof op['path'] !== 'string' || typeof op['op'] !== 'string')
      throw new PatchError(`invalid operation ${JSON.stringify(op)}`);
    const parts = op['path']
      .split('/')
      .slice(1)
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop();
    if (last === undefined) {
      doc = clone(op['value'] ?? null);
      continue;
    }
    let parent: Json = doc;
    for (const p of parts) {
      parent = Array.isArray(parent) ? (parent[Number(p)] ?? null) : isObject(parent) ? (parent[p] ?? null) : null;
      if (parent === null) throw new PatchError(`path ${op['path']} does not exist`);
    }
    applyOp(parent, last, op);
  }
  return doc;
}

function applyOp(parent: Json, last: string, op: JsonObject): void {
  const value = clone(op['value'] ?? null);
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : Number(last);
    if (!Number.isInteger(i) || i < 0 || i > parent.length) throw new PatchError(`index ${last} out of range`);
    if (op['op'] === 'add') parent.splice(i, 0, value);
    else if (op['op'] === 'remove') parent.splice(i, 1);
    else if (op['op'] === 'replace') parent[i] = value;
    else if (op['op'] === 'test' && JSON.stringify(parent[i]) !== JSON.stringify(value)) throw new PatchError('test failed');
    return;
  }
  if (!isObject(parent)) throw new PatchError(`cannot apply ${String(op['op'])} to a scalar`);
  if ((op['op'] === 'remove' || op['op'] === 'replace') && !(last in parent))
    throw new PatchError(`path ${String(op['path'])} does not exist`);
  if (op['op'] === 'add' || op['op'] === 'replace') parent[last] = value;
  else if (op['op'] === 'remove') delete parent[last];
  else if (op['op'] === 'test' && JSON.stringify(parent[last]) !== JSON.stringify(value)) throw new PatchError('test failed');
  else if (op['op'] !== 'test') throw new PatchError(`unsupported op ${String(op['op'])}`);
}

export type { Json, JsonObject };
export { isObject };
