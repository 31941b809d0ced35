/**
 * The last step of a shutdown, for both entry points. `process.exit` waits
 * for every thread to stop, and a thread blocked in the kernel (a write to a
 * dead USB or NFS disk, a FIFO nobody reads) never comes back, so the process
 * would outlive SHUTDOWN_TIMEOUT_SEC for ever (SPEC section 11). While the
 * writer thread is still inside a write, the process ends itself with SIGKILL
 * instead: the rows it held were logged as unwritten, and the kernel finishes
 * or abandons that write without us.
 */

/** What the exit needs to know of the writer. */
export interface WriterActivity {
  /** A group commit is under way on the writer thread. */
  readonly writing: boolean;
}

export function exitProcess(code: number, writer: WriterActivity): never {
  if (code !== 0 && writer.writing) process.kill(process.pid, 'SIGKILL');
  process.exit(code);
}
