// The spec validator is compiled ahead of time from SPEC_INPUT_SCHEMA: the committed code must be current.
import { readFileSync } from 'fs';
import { join } from 'path';
import { schemaIssues } from '../../lib/model/validate';
import { VALIDATOR_FILE, validatorSource } from '../../scripts/spec-validator';

test(`${VALIDATOR_FILE} is what scripts/spec-validator.ts writes now (npx projen codegen)`, () => {
  expect(readFileSync(join(__dirname, '..', '..', VALIDATOR_FILE), 'utf8')).toBe(validatorSource());
});

test('the compiled validator reports each problem with the field, the value and what is allowed', () => {
  expect(schemaIssues({ name: 'Orders', size: 0, labels: { 'bad key': 'x' } })).toEqual([
    expect.objectContaining({ field: 'name', value: 'Orders', allowed: expect.stringMatching(/^a DNS-1035 label/) }),
    expect.objectContaining({ field: 'size', value: 0, allowed: 'an integer from 1 to 99' }),
    expect.objectContaining({ field: 'labels key', value: 'bad key' }),
  ]);
});
