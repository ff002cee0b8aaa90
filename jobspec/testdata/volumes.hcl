# Host volumes mounted into tasks, and a sticky, migrating scratch disk.
job "postgres" {
  datacenters = ["dc1"]

  group "db" {
    volume "pgdata" {
      type      = "host"
      source    = "pgdata"
      read_only = false
    }

    volume "certs" {
      source    = "tls-certs"
      read_only = true
      per_alloc = true
    }

    ephemeral_disk {
      size    = 2048
      sticky  = true
      migrate = true
    }

    network {
      port "pg" {
        static = 5432
      }
    }

    task "postgres" {
      driver = "containerd"

      volume_mount {
        volume      = "pgdata"
        destination = "/var/lib/postgresql/data"
      }

      volume_mount {
        volume           = "certs"
        destination      = "/etc/postgres/certs"
        read_only        = true
        propagation_mode = "host-to-task"
      }

      config {
        image = "postgres:16"
        ports = ["pg"]
      }

      env {
        PGDATA = "/var/lib/postgresql/data/pgdata"
      }

      resources {
        cpu    = 1000
        memory = 2048
      }
    }
  }
}
