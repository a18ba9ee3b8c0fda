"""The README's recipes (docs/servers.md) as runnable commands: for each
server, the files it needs (an app, a config, a build) written into a
directory, and its command line. tests/compat/ runs them behind `handoff
--listen`, tests/systemd/test-template-servers.py under handoff@.service.
A server whose Debian package is not installed raises Skip naming it."""

import os
import shutil
import subprocess

from handofftest.runner import Skip
from handofftest.wait import check

HERE = os.path.dirname(os.path.abspath(__file__))

# handoff's options each recipe needs beyond the defaults (the README's
# "stop signal", "readiness" and "notify options" columns).
OPTIONS = {
    "lighttpd": ["--ready=delay:500ms", "--stop-signal=INT"],
    "nginx": ["--ready=delay:3s", "--stop-signal=QUIT"],
    "node": ["--notify-access=all"],
    "haproxy": ["--stop-signal=USR1"],
    "uvicorn": ["--ready=delay:2s"],
}


def need(binary, package):
    """The path of binary, or a Skip naming the Debian package to install."""
    path = shutil.which(binary) or (binary if os.path.isabs(binary) and os.access(binary, os.X_OK) else None)
    if not path:
        raise Skip(f"{binary} is not installed (Debian package {package}; scripts/install-deps.sh installs it)")
    return path


def write(d, name, text):
    """d/name with text, readable by everyone (a server may run as another
    user)."""
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


WSGI_APP = '''
import os
def app(environ, start_response):
    body = b"pid=%d\\n" % os.getppid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
application = app
'''


def gunicorn(d):
    """A pre-fork WSGI server: takes LISTEN_FDS by itself, its arbiter sends
    READY=1, SIGTERM is its graceful stop."""
    binary = need("gunicorn", "gunicorn")
    write(d, "wsgiapp.py", WSGI_APP)
    return [binary, "--workers", "2", "--chdir", d, "--graceful-timeout", "10", "wsgiapp:app"]


def uwsgi(d, *extra):
    """uWSGI's master takes LISTEN_FDS and sends READY=1; --protocol http for
    an inherited socket, and the hook that makes SIGTERM graceful (see
    test-uwsgi.py)."""
    binary = need("uwsgi", "uwsgi")
    if not os.path.exists("/usr/lib/uwsgi/plugins/python3_plugin.so"):
        raise Skip("uWSGI's python3 plugin is not installed (Debian package uwsgi-plugin-python3)")
    app = write(d, "app.py", WSGI_APP)
    return [binary, "--plugin", "python3", "--master", "--workers", "2", "--protocol", "http", "--wsgi-file", app,
            "--hook-master-start", "unix_signal:15 gracefully_kill_them_all", "--disable-logging", *extra]


LIGHTTPD_CONF = '''
server.document-root = "{root}"
server.bind = "127.0.0.1"
server.port = env.PORT
server.systemd-socket-activation = "enable"
{errorlog}index-file.names = ("index.html")
'''


def lighttpd(d, errorlog=None):
    """lighttpd with socket activation on: its server.bind and server.port
    (from $PORT) must name the socket's address. Errors go to errorlog,
    else to stderr."""
    binary = need("lighttpd", "lighttpd")
    root = os.path.join(d, "www")
    os.mkdir(root, 0o755)
    write(root, "index.html", "lighttpd\n")
    conf = write(d, "lighttpd.conf", LIGHTTPD_CONF.format(
        root=root, errorlog=f'server.errorlog = "{errorlog}"\n' if errorlog else ""))
    return [binary, "-D", "-f", conf]


NGINX_CONF = '''
daemon off;
master_process on;
worker_processes 2;
pid nginx.pid;
error_log stderr notice;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path body;
    proxy_temp_path proxy;
    fastcgi_temp_path fastcgi;
    uwsgi_temp_path uwsgi;
    scgi_temp_path scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type text/plain;
            return 200 "pid=$pid\\n";
        }}
    }}
}}
'''


def nginx(d, port, prefix=None):
    """nginx has no LISTEN_FDS support: nginx-listen-fds names the sockets
    in NGINX, the variable of its binary upgrade, and execs it; its listen
    directive must name the socket's address (127.0.0.1:port). It writes
    its pid file and temporary directories under prefix (-p; d unless
    given), so none of Debian's paths has to be writable; the log goes to
    stderr, at notice level, which says "using inherited sockets"."""
    binary = need("nginx", "nginx")
    wrapper = os.path.join(d, "nginx-listen-fds")
    shutil.copyfile(os.path.join(HERE, "nginx-listen-fds"), wrapper)
    os.chmod(wrapper, 0o755)
    conf = write(d, "nginx.conf", NGINX_CONF.format(port=port))
    return [wrapper, binary, "-p", os.path.join(prefix or d, ""), "-c", conf]


def node(d):
    """node-server.js: server.listen({fd: 3}), READY=1 from systemd-notify, a
    SIGTERM handler."""
    binary = need("node", "nodejs")
    need("systemd-notify", "systemd")
    script = os.path.join(d, "node-server.js")
    shutil.copyfile(os.path.join(HERE, "node-server.js"), script)
    os.chmod(script, 0o644)
    return [binary, script]


GOSYSTEMD = "/usr/share/gocode/src/github.com/coreos/go-systemd/activation"


def go(d):
    """goserver/main.go, built here offline from Debian's Go library tree
    (GO111MODULE=off, GOPATH=/usr/share/gocode) with a cache that outlives
    the test ($GOCACHE, which meson sets), so that only the first run
    compiles."""
    binary = need("go", "golang-go")
    if not os.path.isdir(GOSYSTEMD):
        raise Skip(f"{GOSYSTEMD} is missing (Debian package golang-github-coreos-go-systemd-dev)")
    out = os.path.join(d, "goserver")
    cache = os.environ.get("GOCACHE") or os.path.join(os.environ.get("MESON_BUILD_ROOT", d), "go-cache")
    env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode", GOCACHE=cache, GOFLAGS="",
               CGO_ENABLED="0")
    r = subprocess.run([binary, "build", "-o", out, os.path.join(HERE, "goserver", "main.go")], env=env,
                       capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, f"go build failed: {r.stdout} {r.stderr}")
    return [out]


SD_NOTIFY_GEM = "/usr/share/rubygems-integration/all/gems/sd_notify-0.1.1/lib/sd_notify.rb"
# Without the reactor (queue_requests false) a thread reads each request
# it accepted: with it, a connection accepted whose request had not yet
# arrived when the stop came is closed unanswered (seen: 1 in 10 reloads).
PUMA_RB = "queue_requests false\n"
CONFIG_RU = '''
run lambda { |env|
  body = "pid=#{Process.pid}\\n"
  [200, {"Content-Type" => "text/plain", "Content-Length" => body.bytesize.to_s}, [body]]
}
'''


def puma(d):
    """puma takes the socket with --bind-to-activated-sockets only and sends
    READY=1 through the sd_notify gem (path sockets only: see
    test-puma.py)."""
    binary = need("puma", "puma")
    if not os.path.exists(SD_NOTIFY_GEM):
        raise Skip(f"{SD_NOTIFY_GEM} is missing (Debian package ruby-sd-notify, which puma uses for READY=1)")
    app = write(d, "config.ru", CONFIG_RU)
    conf = write(d, "puma.rb", PUMA_RB)
    return [binary, "--config", conf, "--bind-to-activated-sockets", "only", "--threads", "2:4",
            "--environment", "production", app]


# "bind fd@3" takes the socket handoff (or systemd) passes as fd 3: HAProxy
# 2.6 does not read LISTEN_FDS. It answers by itself ("http-request
# return"), so no backend is needed; %pid is the worker's.
HAPROXY_CFG = '''
global
    # Below handoff's --drain-timeout: HAProxy ends what is left of a
    # retiring generation itself, before handoff's SIGKILL would.
    hard-stop-after 15s
defaults
    mode http
    # At its soft stop HAProxy closes idle keep-alive connections at once,
    # and a client that does not retry a request on a reused connection
    # fails; with this, each is answered once more with "Connection:
    # close", or closed when idle for "timeout http-keep-alive".
    option idle-close-on-response
    timeout http-keep-alive 5s
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend web
    bind fd@3
    http-request return status 200 content-type text/plain lf-string "pid=%pid\\n"
'''


def haproxy(d):
    """HAProxy in master-worker mode (-Ws): the master sends READY=1 through
    libsystemd once its worker runs, and passes SIGUSR1, the soft stop, to
    it (--stop-signal=USR1: SIGTERM is its hard stop)."""
    binary = need("haproxy", "haproxy")
    cfg = write(d, "haproxy.cfg", HAPROXY_CFG)
    return [binary, "-Ws", "-f", cfg]


# A plain ASGI 3 app (no framework): it answers the lifespan protocol
# itself, so uvicorn's default --lifespan auto finds a complete app.
ASGI_APP = '''
import os
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b"pid=%d\\n" % os.getpid()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})
'''


def uvicorn(d):
    """uvicorn, the common ASGI server: --fd 3 takes the socket handoff
    passes (it reads no LISTEN_FDS), it has no sd_notify (so
    --ready=delay:DUR), and SIGTERM is its graceful stop."""
    binary = need("uvicorn", "uvicorn")
    write(d, "asgiapp.py", ASGI_APP)
    return [binary, "--fd", "3", "--app-dir", d, "--no-access-log", "asgiapp:app"]
