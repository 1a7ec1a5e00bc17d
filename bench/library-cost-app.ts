// Library-cost child (A): the example app through the construct entry, exactly as apps/main.ts runs it.
// Writes to $CDK8S_OUTDIR; prints its time since process start and any reconciler-only package it loaded.
import { performance } from 'perf_hooks';
import { exampleApp } from '../apps/main';
import { reconcilerOnlyLoaded } from './loaded-modules';

exampleApp().synth();
process.stdout.write(JSON.stringify({ ms: performance.now(), reconcilerOnly: reconcilerOnlyLoaded() }) + '\n');
