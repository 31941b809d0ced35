/**
 * PM2 configuration: `npm run build && pm2 start ecosystem.config.cjs`.
 *
 * Fork mode with one instance is the right default on a Pi. One process
 * already uses both the main thread (HTTP) and a writer thread (disk), and
 * the SD card, not the CPU, sets the pace. Cluster mode would give each
 * process its own queue, its own metrics (a scrape sees one process's
 * counters, at random) and its own history, and the processes would contend
 * for the per-file locks. It stays correct (the locks keep rows whole and
 * headers single), but it is harder to operate. Use it only if one core is
 * really saturated.
 */
const path = require('node:path');

/** Keep above SHUTDOWN_TIMEOUT_SEC (default 30 s) so PM2 never kills a drain part-way. */
const SHUTDOWN_TIMEOUT_SEC = Number(process.env.SHUTDOWN_TIMEOUT_SEC || 30);

module.exports = {
  apps: [
    {
      name: 'sensor-ingest',
      cwd: __dirname,
      // The compiled server, run by node directly (build first: npm run build);
      // Node.js 20, 22 or 24, the supported LTS lines.
      script: path.join(__dirname, 'dist', 'main.js'),
      // The node flags of npm start and the systemd units, for the memory budget (docs/performance.md, Memory).
      node_args: ['--max-semi-space-size=2', '--max-old-space-size=128', '--no-maglev'],
      exec_mode: 'fork',
      instances: 1,
      // PM2 sends SIGINT (the server drains on it as on SIGTERM), then waits this long.
      kill_timeout: (SHUTDOWN_TIMEOUT_SEC + 5) * 1000,
      // The server sends 'ready' once repair is done, the writer is up and the
      // port is open; a reload waits for it (at most listen_timeout).
      wait_ready: true,
      listen_timeout: 30_000,
      autorestart: true,
      restart_delay: 2_000,
      min_uptime: 10_000,
      max_restarts: 10,
      // A steady server stays well under 100 MB; past this, something leaks: restart it.
      max_memory_restart: '250M',
      // PM2's own capture of stdout/stderr; the server also writes rolled files in LOG_DIR.
      out_file: path.join(process.env.LOG_DIR || path.join(__dirname, 'logs'), 'pm2-out.log'),
      error_file: path.join(process.env.LOG_DIR || path.join(__dirname, 'logs'), 'pm2-error.log'),
      merge_logs: true,
      // The shell's values win, so `PORT=9000 pm2 start ecosystem.config.cjs` works;
      // other settings (tokens, STREAMS, …) are passed through from the shell as they are.
      env: {
        NODE_ENV: 'production',
        PORT: process.env.PORT || 8888,
        HOST: process.env.HOST || '0.0.0.0',
        DATA_DIR: process.env.DATA_DIR || path.join(__dirname, 'data'),
        LOG_DIR: process.env.LOG_DIR || path.join(__dirname, 'logs'),
      },
    },
  ],
};
