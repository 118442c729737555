/** `1 row`, `2 rows`: a count with its noun, for the `summary` of a result. */
export function count(n: number, singular: string, plural = `${singular}s`): string {
  return `${n} ${n === 1 ? singular : plural}`;
}
