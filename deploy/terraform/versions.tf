terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Pinned to one major version: a provider major release renames and removes arguments.
      version = "~> 5.80"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge({ Project = "vigil", ManagedBy = "terraform" }, var.tags)
  }
}
