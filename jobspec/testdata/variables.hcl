# Variables, locals and functions. The golden test sets
# -var replicas=3, SKIFF_VAR_environment=staging and -var-file
# variables.vars.hcl (which sets regions and resources).
variable "image_tag" {
  type        = string
  description = "Tag of the api image."
  default     = "1.4.0"
}

variable "replicas" {
  type    = number
  default = 1

  validation {
    condition     = var.replicas > 0 && var.replicas <= 10
    error_message = "replicas must be between 1 and 10"
  }
}

variable "environment" {
  type    = string
  default = "dev"
}

variable "regions" {
  type    = list(string)
  default = ["dc1"]
}

variable "resources" {
  type = object({
    cpu    = number
    memory = number
  })
  default = { cpu = 100, memory = 128 }
}

variable "extra_env" {
  type    = map(string)
  default = { FEATURE_X = "on" }
}

locals {
  name      = "api-${var.environment}"
  image     = format("registry.example.com/api:%s", var.image_tag)
  is_prod   = var.environment == "prod"
  log_level = local.is_prod ? "warn" : "debug"
  ports     = { http = 8080, grpc = 9090 }
  tags      = sort(distinct(concat(["api", var.environment], [for r in var.regions : "dc-${r}"])))
}

job "api" {
  name        = local.name
  datacenters = var.regions
  meta        = merge({ environment = var.environment }, { tag_count = length(local.tags) })

  group "api" {
    count = var.replicas

    task "api" {
      driver = "containerd"

      config {
        image   = local.image
        command = "/api"
        args = [
          "--env=${upper(var.environment)}",
          "--http=${local.ports.http}",
          "--node=${node.unique.name}",
          "--rack=${meta.rack}-${var.environment}",
          "--ip=${attr.unique.network.ip-address}",
          "--home=${env["HOME"]}",
          "--literal=$${not_interpolated}",
        ]
        env = merge(var.extra_env, { LOG_LEVEL = local.log_level })
      }

      env = {
        REPLICAS    = var.replicas
        TAGS        = join(",", local.tags)
        FIRST_DC    = element(var.regions, 0)
        MAX_CPU     = max(var.resources.cpu, 200)
        CHECKSUM    = substr(jsonencode(local.ports), 0, 10)
        SAFE_LOOKUP = try(var.extra_env["MISSING"], "fallback")
        TRIMMED     = trimspace("  padded  ")
      }

      resources {
        cpu    = var.resources.cpu
        memory = var.resources.memory
      }
    }
  }
}
