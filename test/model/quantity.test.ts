// parseQuantity: the quantity grammar the spec accepts and the byte values sizing relies on.
import { parseQuantity } from '../../lib/model/quantity';

describe('parseQuantity', () => {
  test.each([
    ['10Gi', 10 * 1024 ** 3],
    ['500M', 500_000_000],
    ['1.5Gi', 1_610_612_736],
    ['250m', 0.25],
    ['0', 0],
    ['1Ki', 1024],
    ['2k', 2000],
    ['3Mi', 3 * 1024 ** 2],
    ['1Ti', 1024 ** 4],
    ['1Ei', 2 ** 60],
    ['7', 7],
  ])('parses %j as %d', (quantity, bytes) => {
    expect(parseQuantity(quantity)).toBe(bytes);
  });

  test('tells binary from decimal suffixes', () => {
    expect(parseQuantity('1G')).toBe(1e9);
    expect(parseQuantity('1Gi')).toBe(1_073_741_824);
  });

  test.each([
    '10Gb',
    '-1Gi',
    '',
    '1e3',
    ' 1Gi',
    '1Gi ',
    'Gi',
    '.5Gi',
    '1.Gi',
    '+1Gi',
    '10gi',
  ])('rejects %j', (quantity) => {
    expect(parseQuantity(quantity)).toBeUndefined();
  });

  test('rejects a number that is not a string', () => {
    expect(parseQuantity(10 as unknown as string)).toBeUndefined();
  });
});
