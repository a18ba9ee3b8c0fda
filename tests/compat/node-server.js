// A Node.js HTTP server on the socket handoff passes at fd 3
// (server.listen({fd: 3})). Node has no sd_notify of its own: once it
// listens it runs systemd-notify --ready, a child process, so handoff needs
// --notify-access=all to take that READY=1 (or use --ready=delay:DUR).
// On SIGTERM (Node's default there is to die at once) it answers with
// "Connection: close" for a short close-grace, then stops accepting, closes
// idle keep-alive connections, lets in-flight requests finish and exits.
'use strict';
const http = require('http');
const { execFile } = require('child_process');

let closing = false;
const server = http.createServer((req, res) => {
  const body = `pid=${process.pid}\n`;
  const headers = { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) };
  if (closing) headers.Connection = 'close';
  res.writeHead(200, headers);
  res.end(body);
});

server.listen({ fd: 3 }, () => {
  if (!process.env.NOTIFY_SOCKET) return;
  execFile('systemd-notify', ['--ready'], (err) => {
    if (err) console.error(`node-server: systemd-notify --ready failed: ${err.message}`);
  });
});

process.on('SIGTERM', () => {
  closing = true;
  setTimeout(() => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
  }, 100);
});
