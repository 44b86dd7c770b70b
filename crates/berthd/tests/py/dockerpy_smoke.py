"""docker-py against berthd: ping, version, run detached + logs + wait + remove, list filters, commit, pull.

Usage: dockerpy_smoke.py SOCKET [REGISTRY_IMAGE]; exits non-zero (with a traceback) on any failure.
"""
import sys

import docker

sock = sys.argv[1]
pulled = sys.argv[2] if len(sys.argv) > 2 else None
client = docker.DockerClient(base_url=f"unix://{sock}", version="auto")

assert client.ping() is True
v = client.version()
assert v["ApiVersion"] == "1.47", v
assert client.info()["Driver"] == "overlay2"

c = client.containers.run("busybox", ["sh", "-c", "echo py-hello; echo py-err >&2"], detach=True,
                          labels={"suite": "dockerpy"}, name="pyrun")
res = c.wait()
assert res["StatusCode"] == 0, res
assert c.logs(stdout=True, stderr=False) == b"py-hello\n", c.logs()
assert c.logs(stdout=False, stderr=True) == b"py-err\n"
c.reload()
assert c.status == "exited", c.status

listed = client.containers.list(all=True, filters={"label": "suite=dockerpy"})
assert [x.name for x in listed] == ["pyrun"], listed
assert client.containers.list(all=True, filters={"status": "running"}) == []
assert client.containers.list(all=True, filters={"name": "nomatch"}) == []

running = client.containers.run("busybox", ["sleep", "1000"], detach=True)
ex = running.exec_run(["sh", "-c", "echo in-exec; exit 4"])
assert ex.exit_code == 4 and ex.output == b"in-exec\n", ex
running.exec_run(["sh", "-c", "echo committed > /mark"])
img = running.commit("pysnap", "v1", message="from py", changes=["CMD cat /mark"])
assert "pysnap:v1" in img.tags and img.attrs["Comment"] == "from py", img.attrs
assert client.containers.run("pysnap:v1", remove=True) == b"committed\n"
running.remove(force=True)
client.images.remove("pysnap:v1")

out = client.containers.run("busybox", ["echo", "attached"], remove=True)
assert out == b"attached\n", out

c.remove()
try:
    client.containers.get("pyrun")
    raise AssertionError("container still there")
except docker.errors.NotFound:
    pass

if pulled:
    img = client.images.pull(pulled)
    assert pulled in img.tags, img.tags
    assert client.containers.run(pulled, ["echo", "from-pull"], remove=True) == b"from-pull\n"

print("docker-py OK")
