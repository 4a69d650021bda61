import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

/**
 * Calls `onChange` after `file` was written or replaced, once per burst of changes (`settleMs` after the last one).
 * The folder is watched rather than the file: editors and config tools save by writing a new file and renaming it
 * over the old one, which a watch on the old file would not see. Returns a function that stops watching.
 */
export function watchFile(file: string, onChange: () => void, settleMs = 200): () => void {
  const name = basename(file);
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined = watch(dirname(file), { persistent: false }, (_event, changed) => {
    if (changed !== null && changed.toString() !== name) return;
    clearTimeout(timer);
    timer = setTimeout(onChange, settleMs);
  });
  // A folder that goes away ends the watch; SIGHUP still reloads.
  watcher.on('error', () => stop());
  function stop(): void {
    clearTimeout(timer);
    watcher?.close();
    watcher = undefined;
  }
  return stop;
}
