# The job `nomad job init` writes, trimmed: a Nomad file that uses the
# docker driver, which Skiff runs through containerd.
job "example" {
  datacenters = ["dc1"]

  group "cache" {
    network {
      port "db" {
        to = 6379
      }
    }

    task "redis" {
      driver = "docker"

      config {
        image           = "redis:7"
        ports           = ["db"]
        args            = ["redis-server", "--appendonly", "yes"]
        entrypoint      = ["docker-entrypoint.sh"]
        hostname        = "redis-${NOMAD_ALLOC_INDEX}"
        cap_drop        = ["NET_RAW"]
        readonly_rootfs = false
        work_dir        = "/data"

        labels {
          tier = "cache"
        }

        mount {
          type   = "bind"
          source = "local/redis.conf"
          target = "/usr/local/etc/redis/redis.conf"
        }

        mount {
          type     = "tmpfs"
          target   = "/tmp"
          readonly = false
          tmpfs_options {
            size = 100000
          }
        }

        auth {
          username = "robot"
          password = "hunter2"
        }
      }

      resources {
        cpu    = 500
        memory = 256
      }
    }
  }
}
