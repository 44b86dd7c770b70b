"""docker-py's volume API against berthd: create/list/get/remove/prune and volumes on containers.
Usage: dockerpy_volumes.py SOCKET"""
import sys

import docker

c = docker.DockerClient(base_url="unix://" + sys.argv[1])
v = c.volumes.create("pyvol", labels={"a": "b"})
assert v.name == "pyvol" and v.attrs["Labels"] == {"a": "b"}, v.attrs
assert v.attrs["Driver"] == "local" and v.attrs["Scope"] == "local", v.attrs
assert [x.name for x in c.volumes.list(filters={"label": "a=b"})] == ["pyvol"]
out = c.containers.run("busybox", ["sh", "-c", "echo py > /v/f; cat /v/f"],
                       volumes={"pyvol": {"bind": "/v", "mode": "rw"}}, remove=True)
assert out == b"py\n", out
ctr = c.containers.create("busybox", "true", volumes=["pyvol:/v:ro"])
mounts = c.api.inspect_container(ctr.id)["Mounts"]
assert mounts[0]["Name"] == "pyvol" and mounts[0]["RW"] is False, mounts
try:
    c.volumes.get("pyvol").remove()
    raise SystemExit("removed a volume in use")
except docker.errors.APIError as e:
    assert e.status_code == 409 and "volume is in use" in str(e), e
ctr.remove(v=True)
try:
    c.volumes.get("nope")
    raise SystemExit("found a missing volume")
except docker.errors.NotFound as e:
    assert "no such volume" in str(e), e
r = c.volumes.prune(filters={"all": "true"})
assert r["VolumesDeleted"] == ["pyvol"], r
assert c.volumes.list() == []
print("docker-py volumes OK")
