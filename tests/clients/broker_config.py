"""Prints one broker config as confluent-kafka's AdminClient reads it (DescribeConfigs).

Usage: broker_config.py BOOTSTRAP NODE_ID NAME
"""
import sys

from confluent_kafka.admin import AdminClient, ConfigResource

bootstrap, node_id, name = sys.argv[1:4]
admin = AdminClient({"bootstrap.servers": bootstrap})
resource = ConfigResource("broker", node_id)
print(admin.describe_configs([resource])[resource].result(30)[name].value)
