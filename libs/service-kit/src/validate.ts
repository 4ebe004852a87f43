// Request checks shared by every handler: each failure is INVALID_ARGUMENT naming the field.
import { invalidArgument } from "./errors.js";

// Ids name object-store prefixes (runs/<run>/...): "." and ".." would write at the bucket's root or
// into runs/ itself, so an id of dots alone is refused.
const ID = /^(?!\.+$)[A-Za-z0-9._-]{1,128}$/;

/** A run id, consumer id or lease id: 1-128 characters of [A-Za-z0-9._-], not dots alone. */
export function requireId(value: string, field: string): string {
  if (!ID.test(value)) {
    throw invalidArgument(
      `${field}: ${JSON.stringify(value)} is not an id (1-128 characters of A-Z a-z 0-9 . _ -, not dots alone)`,
    );
  }
  return value;
}

export function requirePresent<T>(value: T | undefined, field: string): T {
  if (value === undefined) throw invalidArgument(`${field}: is required`);
  return value;
}

export function requireNonEmpty(value: string, field: string): string {
  if (value.length === 0) throw invalidArgument(`${field}: is required`);
  return value;
}

/** An enum value that is set (not *_UNSPECIFIED = 0) and known (not UNRECOGNIZED = -1). */
export function requireEnum<E extends number>(value: E, names: Record<number, string>, field: string): E {
  if (value === 0 || value === -1 || names[value] === undefined) {
    const known = Object.entries(names)
      .filter(([k]) => Number(k) > 0)
      .map(([, v]) => v)
      .join(", ");
    throw invalidArgument(`${field}: must be one of ${known}, got ${names[value] ?? value}`);
  }
  return value;
}

export function requireRange(
  value: number,
  field: string,
  min: number,
  max = Infinity,
  open = false,
): number {
  const ok = Number.isFinite(value) && (open ? value > min : value >= min) && value <= max;
  if (!ok) {
    throw invalidArgument(
      `${field}: ${value} is outside ${open ? "(" : "["}${min}, ${max === Infinity ? "inf" : max}]`,
    );
  }
  return value;
}
