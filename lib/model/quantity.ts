// Kubernetes resource quantities ("10Gi", "500M", "250m"): parsing for validation and sizing.

/** Binary and decimal suffixes Kubernetes accepts, with their multipliers. */
const SUFFIXES: Readonly<Record<string, number>> = {
  '': 1,
  'm': 1e-3,
  'k': 1e3,
  'M': 1e6,
  'G': 1e9,
  'T': 1e12,
  'P': 1e15,
  'E': 1e18,
  'Ki': 2 ** 10,
  'Mi': 2 ** 20,
  'Gi': 2 ** 30,
  'Ti': 2 ** 40,
  'Pi': 2 ** 50,
  'Ei': 2 ** 60,
};

/**
 * A non-negative quantity without exponent notation: digits, an optional fraction and one of the
 * suffixes above. Stricter than the API server's grammar on purpose (no signs, no "1e3"), so the
 * same pattern serves validation here and in the CRD schema.
 */
export const QUANTITY_PATTERN = '^[0-9]+(\\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$';
const QUANTITY_RE = new RegExp(QUANTITY_PATTERN);

/** The value of `quantity` in base units (bytes for storage), or undefined if it is not a quantity. */
export function parseQuantity(quantity: string): number | undefined {
  if (typeof quantity !== 'string' || !QUANTITY_RE.test(quantity)) {
    return undefined;
  }
  const match = /^([0-9.]+)(.*)$/.exec(quantity)!;
  return Number(match[1]) * SUFFIXES[match[2]];
}
