//! berth-build: Dockerfiles, build contexts and the classic builder (`berth build`, `POST /build`).
