output "instance_id" {
  description = "EC2 instance id."
  value       = aws_instance.vigil.id
}

output "public_ip" {
  description = "Public IPv4 address (reachable on port 22 from ssh_allowed_cidr only)."
  value       = aws_instance.vigil.public_ip
}

output "ami_id" {
  description = "The Debian 12 AMI the instance was launched from."
  value       = data.aws_ami.debian12.id
}

output "data_volume_id" {
  description = "EBS volume holding VIGIL_HOME (/var/lib/vigil)."
  value       = aws_ebs_volume.data.id
}

output "ssh_command" {
  description = "Log in as Debian's admin user."
  value       = "ssh admin@${aws_instance.vigil.public_ip}"
}

output "ssh_tunnel_command" {
  description = "Forward Prometheus, Alertmanager and the Vigil service to this machine's loopback."
  value       = "ssh -N -L 9090:127.0.0.1:9090 -L 9093:127.0.0.1:9093 -L 19000:127.0.0.1:19000 admin@${aws_instance.vigil.public_ip}"
}

output "bootstrap_log" {
  description = "Where first-boot progress is logged on the instance."
  value       = "/var/log/vigil-bootstrap.log"
}
