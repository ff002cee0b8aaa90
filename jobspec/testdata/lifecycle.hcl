# Task lifecycle: an init task before the main task, a log-shipping sidecar,
# and a cleanup task after it stops.
job "app-with-sidecars" {
  datacenters = ["dc1"]

  group "app" {
    # Five tasks keep up to 5 x 10 x 10 MB of logs.
    ephemeral_disk {
      size = 600
    }

    task "migrate-db" {
      driver = "containerd"

      lifecycle {
        hook    = "prestart"
        sidecar = false
      }

      config {
        image   = "registry.example.com/app:7"
        command = "/app"
        args    = ["migrate", "--wait"]
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }

    task "log-shipper" {
      driver = "containerd"

      lifecycle {
        hook    = "prestart"
        sidecar = true
      }

      config {
        image = "fluent/fluent-bit:3.1"
        args  = ["-i", "tail", "-p", "path=${NOMAD_ALLOC_DIR}/logs/*", "-o", "stdout"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }

    task "app" {
      driver = "containerd"
      leader = true

      config {
        image = "registry.example.com/app:7"
      }

      restart {
        attempts = 5
      }
    }

    task "announce" {
      driver = "containerd"

      lifecycle {
        hook = "poststart"
      }

      config {
        image   = "curlimages/curl:8.8.0"
        command = "curl"
        args    = ["-fsS", "-X", "POST", "http://hooks.internal/started/${NOMAD_ALLOC_ID}"]
      }
    }

    task "cleanup" {
      driver = "containerd"

      lifecycle {
        hook = "poststop"
      }

      config {
        image   = "busybox:1.36"
        command = "rm"
        args    = ["-rf", "${NOMAD_ALLOC_DIR}/tmp"]
      }
    }
  }
}
