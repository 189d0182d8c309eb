use rdkafka as _;
