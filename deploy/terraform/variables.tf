variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"
}

variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "vigil"
}

variable "ssh_allowed_cidr" {
  description = "The only source allowed to reach the instance (SSH, port 22), e.g. your office's 203.0.113.0/24. Nothing else is reachable from outside."
  type        = string

  validation {
    condition     = can(cidrhost(var.ssh_allowed_cidr, 0)) && var.ssh_allowed_cidr != "0.0.0.0/0"
    error_message = "ssh_allowed_cidr must be a CIDR block narrower than 0.0.0.0/0."
  }
}

variable "ssh_public_key" {
  description = "OpenSSH public key installed for the admin user (the Debian AMI's user is `admin`)."
  type        = string
}

variable "instance_type" {
  description = "EC2 instance type. Training and the local stack want 2+ vCPUs and 8 GiB."
  type        = string
  default     = "t3.large"
}

variable "root_volume_gb" {
  description = "Root volume size (system, /opt/vigil and its virtualenv, Prometheus TSDB)."
  type        = number
  default     = 30
}

variable "data_volume_gb" {
  description = "Size of the separate EBS volume mounted at /var/lib/vigil (VIGIL_HOME: archive, MLflow store, models)."
  type        = number
  default     = 50
}

variable "vpc_cidr" {
  description = "CIDR of the VPC created for Vigil."
  type        = string
  default     = "10.42.0.0/16"
}

variable "subnet_cidr" {
  description = "CIDR of the one public subnet (inside vpc_cidr)."
  type        = string
  default     = "10.42.1.0/24"
}

variable "availability_zone" {
  description = "Availability zone of the subnet, instance and data volume; empty: the region's first."
  type        = string
  default     = ""
}

variable "repo_url" {
  description = "Git URL the instance clones Vigil from. Empty: copy the checkout to /opt/vigil yourself (rsync over SSH) and run /usr/local/sbin/vigil-install."
  type        = string
  default     = ""
}

variable "repo_ref" {
  description = "Branch, tag or commit of repo_url to deploy."
  type        = string
  default     = "main"
}

variable "install_local_llm" {
  description = "Build the optional local LLM (llama-cpp-python, several minutes of compiling on first boot)."
  type        = bool
  default     = false
}

variable "enable_ssm" {
  description = "Attach AmazonSSMManagedInstanceCore so Session Manager can reach the instance without SSH. Off: the instance role has no permissions at all."
  type        = bool
  default     = false
}

variable "services" {
  description = "The services Vigil watches on this host and what each calls (vigil.yml `entities:`), so that a host and its services alarming together are one incident: host (the host's node_exporter instance or its host part), depends_on (dependency name -> \"network\" or \"local\") and the client metrics measuring those calls (a duration histogram and a failures counter by `error`, both labelled `dependency`). Empty: the host alone."
  type = map(object({
    host                       = optional(string, "127.0.0.1")
    depends_on                 = optional(map(string), {})
    dependency_duration_metric = optional(string, "")
    dependency_failures_metric = optional(string, "")
  }))
  default = {}

  validation {
    condition     = alltrue([for s in values(var.services) : alltrue([for kind in values(s.depends_on) : contains(["network", "local"], kind)])])
    error_message = "Each depends_on value must be \"network\" or \"local\"."
  }

  validation {
    condition     = alltrue([for s in values(var.services) : length(s.depends_on) == 0 || (s.dependency_duration_metric != "" && s.dependency_failures_metric != "")])
    error_message = "A service with depends_on needs dependency_duration_metric and dependency_failures_metric."
  }

  validation {
    condition     = !strcontains(jsonencode(var.services), "'")
    error_message = "Service names and values must not contain a single quote (they are written to a systemd environment file)."
  }
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}
