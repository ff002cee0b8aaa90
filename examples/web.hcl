# A small web service: two busybox httpd instances, registered in Skiff's
# service catalogue with a health check, updated one at a time.
#
#   skiff job run examples/web.hcl
#   skiff job run -var image=registry.example.com/busybox:1.36 examples/web.hcl
#   skiff job run -var greeting=bonjour examples/web.hcl   # a rolling update

variable "image" {
  type        = string
  description = "An image with busybox httpd in it."
  default     = "127.0.0.1:5000/skiff/busybox:latest"
}

variable "greeting" {
  type        = string
  description = "The first word of the page each instance serves."
  default     = "hello"
}

job "web" {
  datacenters = ["*"]
  type        = "service"

  update {
    max_parallel     = 1
    min_healthy_time = "5s"
    healthy_deadline = "1m"
    auto_revert      = true
  }

  group "web" {
    count = 2

    # Tasks share the host's network for now (bridge networking comes
    # later): each instance listens on the port the scheduler picked.
    network {
      port "http" {}
    }

    service {
      name = "web"
      port = "http"

      check {
        type     = "tcp"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "httpd" {
      driver = "containerd"

      config {
        image   = var.image
        command = "sh"
        args = ["-c", <<-EOT
          echo "${var.greeting} from allocation $NOMAD_ALLOC_ID" > /local/index.html
          echo "serving on port ${NOMAD_PORT_http}"
          exec httpd -f -p ${NOMAD_PORT_http} -h /local
        EOT
        ]
        ports = ["http"]
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
