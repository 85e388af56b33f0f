# s3s-fs (an S3 server on a directory, from crates.io) on an empty base, for
# machines where MinIO's image cannot be pulled (docker-compose.s3s.yml).
# rootfs/ holds usr/bin/s3s-fs, usr/bin/hearth (for `hearth tools probe`,
# the health check) and data/hearth/, the bucket.
FROM scratch
COPY rootfs/ /
ENTRYPOINT ["/usr/bin/s3s-fs"]
