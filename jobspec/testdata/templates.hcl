# Templates: inline data with Go template syntax and node interpolation,
# a source file, env templates, and a signal on change.
job "proxy" {
  datacenters = ["dc1"]

  group "proxy" {
    count = 2

    network {
      port "http" {
        static = 80
      }
    }

    task "nginx" {
      driver = "containerd"

      config {
        image = "nginx:1.27-alpine"
        ports = ["http"]
        mounts = [
          {
            type   = "bind"
            source = "local/nginx.conf"
            target = "/etc/nginx/conf.d/default.conf"
          },
        ]
      }

      template {
        destination   = "local/nginx.conf"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        splay         = "10s"
        data          = <<-EOT
          upstream backend {
          {{- range nomadService "api" }}
            server {{ .Address }}:{{ .Port }};
          {{- end }}
          }
          server {
            listen ${NOMAD_PORT_http};
            server_name ${attr.unique.hostname};
            location / { proxy_pass http://backend; }
          }
        EOT
      }

      template {
        destination = "secrets/app.env"
        env         = true
        perms       = "0600"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/proxy" }}API_KEY={{ .api_key }}{{ end }}
          DATACENTER=${node.datacenter}
        EOT
      }

      template {
        source          = "local/motd.tpl"
        destination     = "local/motd"
        change_mode     = "noop"
        left_delimiter  = "[["
        right_delimiter = "]]"
        once            = true
      }

      template {
        destination = "local/index.html"
        data        = file("files/index.html")
      }

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
