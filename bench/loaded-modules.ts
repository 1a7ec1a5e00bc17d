// Which packages a benchmark child process has loaded (require.cache, which also lists require(esm) entries).

/** The reconciler's runtime and the build-time validator: an app that only synthesizes must load none of them. */
export const RECONCILER_ONLY = ['@kubernetes/client-node', 'etcd3', 'cockatiel', 'ajv'];

/** The package a loaded file belongs to (its innermost node_modules folder), or '(own)' for project files. */
export function packageOf(file: string): string {
  const parts = file.split(/[\\/]node_modules[\\/]/);
  if (parts.length < 2) return '(own)';
  const [first, second] = parts[parts.length - 1].split(/[\\/]/);
  return first.startsWith('@') ? `${first}/${second}` : first;
}

/** Module count per package over the given loaded files (default: all loaded so far). */
export function loadedPackages(files: string[] = Object.keys(require.cache)): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const file of files) {
    const name = packageOf(file);
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

/** The reconciler-only packages this process has loaded so far. */
export function reconcilerOnlyLoaded(): string[] {
  const loaded = loadedPackages();
  return RECONCILER_ONLY.filter((name) => loaded[name] !== undefined);
}
