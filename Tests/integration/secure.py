"""Helpers for the security tests: a certificate authority and certificates made with openssl at
test time (nothing secret is committed), Runnel nodes whose listeners speak TLS and SASL, the
client settings of each client library, and a raw Kafka connection that logs in with SASL/PLAIN
so tests can send hand-made requests as a given principal.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import struct
import subprocess
import time
from pathlib import Path

import kwire
from nodes import RunnelNode, free_ports, port_accepts

OPENSSL = shutil.which("openssl")


def _run(*args: str, cwd: Path) -> None:
    p = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {p.stderr}")


class PKI:
    """A CA, one server certificate for 127.0.0.1/localhost (every node shares it), and client
    certificates by common name. Files: ca.pem, server.pem (key + chain: a PEM key store),
    server-encrypted.pem (the same with the key encrypted by `KEY_PASSWORD`), and for each client
    <name>.crt and <name>.key."""

    KEY_PASSWORD = "keypass"

    def __init__(self, directory: Path, clients: tuple[str, ...] = ("alice", "admin")):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        d = self.dir
        _run(OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
             "-out", "ca.pem", "-days", "2", "-subj", "/CN=Runnel Test CA", cwd=d)
        self._issue("server", "/CN=localhost/O=Runnel", san="subjectAltName=DNS:localhost,IP:127.0.0.1")
        (d / "server.pem").write_text((d / "server.key").read_text() + (d / "server.crt").read_text())
        _run(OPENSSL, "pkcs8", "-topk8", "-in", "server.key", "-out", "server-encrypted.key", "-v2", "aes-256-cbc",
             "-passout", f"pass:{self.KEY_PASSWORD}", cwd=d)
        (d / "server-encrypted.pem").write_text((d / "server-encrypted.key").read_text() + (d / "server.crt").read_text())
        for name in clients:
            self._issue(name, f"/C=NO/O=Runnel/OU=Test/CN={name}")

    def _issue(self, name: str, subject: str, san: str | None = None) -> None:
        d = self.dir
        _run(OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{name}.key", cwd=d)
        _run(OPENSSL, "req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
        ext = d / f"{name}.ext"
        ext.write_text((san + "\n") if san else "basicConstraints=CA:FALSE\n")
        _run(OPENSSL, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.crt", "-days", "2", "-extfile", str(ext), cwd=d)

    @property
    def ca(self) -> str:
        return str(self.dir / "ca.pem")

    def cert(self, name: str) -> str:
        return str(self.dir / f"{name}.crt")

    def key(self, name: str) -> str:
        return str(self.dir / f"{name}.key")

    def server_ssl(self, encrypted: bool = False) -> dict:
        """The `ssl.*` keys of a node's TLS listeners (and its connections to other nodes)."""
        props = {"ssl.keystore.type": "PEM", "ssl.truststore.type": "PEM", "ssl.truststore.location": self.ca}
        if encrypted:
            props.update({"ssl.keystore.location": str(self.dir / "server-encrypted.pem"), "ssl.key.password": self.KEY_PASSWORD})
        else:
            props["ssl.keystore.location"] = str(self.dir / "server.pem")
        return props


def three_listener_props(work: Path, pki: PKI, ports: dict[str, int], admin_password: str,
                         plain_users: dict[str, str]) -> dict:
    """A combined node's server.properties as the security tests run it: SASL_SSL (SCRAM-SHA-512
    and -256), SASL_PLAINTEXT (PLAIN with `plain_users`; the node logs in to itself as admin, its
    inter-broker listener) and SSL asking for client certificates, whose CN becomes the principal
    (`ports` by those names, and CONTROLLER); the StandardAuthorizer with User:admin a super user."""
    ssl_port, sasl_ssl_port, sasl_plain_port, controller_port = (
        ports["SSL"], ports["SASL_SSL"], ports["SASL_PLAINTEXT"], ports["CONTROLLER"])
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"SASL_SSL://127.0.0.1:{sasl_ssl_port},SASL_PLAINTEXT://127.0.0.1:{sasl_plain_port},SSL://127.0.0.1:{ssl_port},"
                     f"CONTROLLER://127.0.0.1:{controller_port}",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256",
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas_plain("admin", admin_password, plain_users),
        "listener.name.ssl.ssl.client.auth": "required",
        "ssl.principal.mapping.rules": "RULE:^CN=([a-z]+),OU=Test,O=Runnel,C=NO$/$1/,DEFAULT",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin",
        "log.dirs": str(work / "data"),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "3",
        "group.initial.rebalance.delay.ms": "0",
        "connection.failed.authentication.delay.ms": "50",
        **pki.server_ssl(),
    }


def jaas_plain(username: str, password: str, users: dict[str, str] | None = None) -> str:
    extra = "".join(f' user_{u}="{p}"' for u, p in (users or {}).items())
    return f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{username}" password="{password}"{extra};'


def jaas_scram(username: str, password: str) -> str:
    return f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{username}" password="{password}";'


class SecureNode(RunnelNode):
    """A Runnel node whose listeners may all be TLS or SASL: readiness is an ApiVersions round
    trip over TLS (ApiVersions is allowed before SASL) on `ready_port`, and `runnel format` gets
    `--add-scram` arguments."""

    def __init__(self, workdir: Path, props: dict, ready_port: int, tls: bool, scram: list[str] | None = None, **kw):
        super().__init__(workdir, props=props, **kw)
        self.ready_port = ready_port
        self.ready_tls = tls
        self.scram = list(scram or [])

    def server_properties(self) -> dict:
        return {k: str(v) for k, v in self.props.items()}

    def format(self) -> None:
        self.write_config()
        argv = [str(self.binary), "format", "--config", str(self.config_path), f"--cluster-id={self.cluster_id}"]
        for s in self.scram:
            argv += ["--add-scram", s]
        p = subprocess.run(argv, cwd=self.workdir, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise RuntimeError(f"runnel format failed: {(p.stderr or p.stdout).decode(errors='replace')}")
        self.formatted = True

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_alive():
                raise RuntimeError(f"node exited: {self.log_tail()}")
            if port_accepts(self.ready_port) and api_versions_ok(self.ready_port, self.ready_tls):
                return
            time.sleep(0.1)
        raise RuntimeError(f"node did not answer on {self.ready_port}: {self.log_tail()}")


def _tls_wrap(sock: socket.socket) -> socket.socket:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(sock, server_hostname="localhost")


def api_versions_ok(port: int, tls: bool) -> bool:
    try:
        with RawConnection(port, tls) as c:
            payload = c.request(kwire.api_versions_request(0, 4242))
            return kwire.parse_api_versions_v0(payload).error_code == 0
    except (OSError, ValueError, TimeoutError, ConnectionError):
        return False


class RawConnection:
    """A Kafka connection for hand-made requests, over TLS or not; `login_plain` authenticates
    with SaslHandshake v1 and SaslAuthenticate as a SASL/PLAIN user."""

    def __init__(self, port: int, tls: bool = False, host: str = "127.0.0.1", timeout: float = 5.0):
        sock = socket.create_connection((host, port), timeout=timeout)
        self.sock = _tls_wrap(sock) if tls else sock
        self.sock.settimeout(timeout)
        self.correlation = 100

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def request(self, frame: bytes) -> bytes:
        """Sends a framed request and returns the response payload (without the size)."""
        self.sock.sendall(frame)
        return self.recv()

    def recv(self) -> bytes:
        size = struct.unpack(">i", self._exact(4))[0]
        return self._exact(size)

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed by the broker")
            buf += chunk
        return buf

    def next_id(self) -> int:
        self.correlation += 1
        return self.correlation

    def send_request(self, api_key: int, version: int, body: bytes, flexible: bool = False) -> bytes:
        """A request with header v1 (v2 when flexible); returns the body after the response header."""
        cid = self.next_id()
        client = b"raw-test"
        header = struct.pack(">hhih", api_key, version, cid, len(client)) + client
        if flexible:
            header += b"\x00"
        payload = self.request(struct.pack(">i", len(header) + len(body)) + header + body)
        got = struct.unpack(">i", payload[:4])[0]
        assert got == cid, (got, cid)
        rest = payload[4:]
        if flexible and api_key != 18:
            rest = rest[1:]  # tagged fields of response header v1
        return rest

    def login_plain(self, username: str, password: str) -> tuple[int, str | None]:
        """SaslHandshake v1 (PLAIN) and SaslAuthenticate v1; the SaslAuthenticate error code and message."""
        mech = b"PLAIN"
        body = self.send_request(17, 1, struct.pack(">h", len(mech)) + mech)
        code = struct.unpack(">h", body[:2])[0]
        assert code == 0, f"SaslHandshake answered {code}"
        token = b"\x00" + username.encode() + b"\x00" + password.encode()
        body = self.send_request(36, 1, struct.pack(">i", len(token)) + token)
        code = struct.unpack(">h", body[:2])[0]
        mlen = struct.unpack(">h", body[2:4])[0]
        message = body[4:4 + mlen].decode() if mlen >= 0 else None
        return code, message


def pick_ports(n: int) -> list[int]:
    return free_ports(n)
