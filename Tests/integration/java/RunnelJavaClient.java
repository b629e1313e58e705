// RunnelJavaClient: Apache Kafka's own Java client (kafka-clients 3.9.1) as a command line tool,
// so the integration tests can drive the reference client against a broker (see javaclient.py).
//
// One file, no build tool: javac -cp <jars> -d <dir> RunnelJavaClient.java. Results go to stdout
// as one JSON object per line; diagnostics go to stderr. Exit status 0 means everything asked
// for happened; 1 means a Kafka operation failed; 2 means bad arguments; 3 means a consume ran
// out of time before it saw the expected number of records.
//
//   produce <bootstrap> <topic> <count> [key=value producer props...]
//       Sends "m-<i>" with key "k-<i % 10>" for i in 0..<count with the client's DEFAULT producer
//       settings (in 3.x: acks=all, enable.idempotence=true), waits for every callback, and then
//       prints {"key","value","partition","offset"} per acknowledged record, in send order.
//       Each failed send is one stderr line; the exit status is 1 if any failed.
//
//   consume <bootstrap> <topic> <expected> <timeoutMs> [group or -] [key=value consumer props...]
//       Reads from the beginning (auto.offset.reset=earliest) until `expected` records arrived
//       or `timeoutMs` passed, then polls one more second to catch extras, printing
//       {"key","value","partition","offset"} per record. With a group it subscribes as a member
//       of that consumer group and commits synchronously after every poll that returned
//       records, and ends with {"committed": {"<partition>": offset, ...}} as read back from the
//       group coordinator. Without a group it assigns every partition itself.
//
//   admin <bootstrap> create <topic> <partitions> <replicationFactor> [key=value topic configs...]
//       AdminClient.createTopics; prints {"created": topic}.
//   admin <bootstrap> describe <topic>
//       AdminClient.describeTopics; prints {"topic","topicId","internal","partitions":[{"partition",
//       "leader","replicas","isr"}]}.
//   admin <bootstrap> describe-by-id <topic>
//       The same, then describeTopics of the topic's id (TopicCollection.ofTopicIds).
//   admin <bootstrap> configs <topic>
//       AdminClient.describeConfigs of the topic; prints {"<name>": {"value","source"}, ...}.
//   admin <bootstrap> transactions <transactional.id> <topic> <partition>
//       The KIP-664 admin calls: listTransactions (all, then filtered to Ongoing), describeTransactions
//       of the id and describeProducers of the partition; prints {"listed": [{"transactionalId",
//       "producerId","state"}]}, {"ongoing": [...]}, {"described": {"coordinatorId","state",
//       "producerId","producerEpoch","timeoutMs","startTimeMs","partitions": ["topic-p", ...]}} and
//       {"producers": [{"producerId","producerEpoch","coordinatorEpoch","lastSequence",
//       "lastTimestamp","currentTransactionStartOffset"}]} (-1 for an absent optional).
//
//   reassign <bootstrap> alter <topic>:<partition>=<id,id,...>|cancel ...
//       Admin.alterPartitionReassignments (KIP-455): each argument moves a partition to the
//       replicas listed, or with "cancel" cancels its move in progress; prints
//       {"partition": "t-0", "error": null | "<exception class>"} per partition.
//   reassign <bootstrap> list [<topic>:<partition> ...]
//       Admin.listPartitionReassignments (all, or the partitions named); prints
//       {"partition": "t-0", "replicas": [...], "adding": [...], "removing": [...]} per move.
//
//   matrix <spec.properties>
//       Several security cells in this one JVM, concurrently (see SecurityMatrix at the end).
//
// A failed admin call prints {"error": "<exception class>", "message": ...} on stdout and exits 1,
// so a test can check which Kafka error the broker answered with.

import java.time.Duration;
import java.util.HashMap;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.LinkedHashSet;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.clients.admin.QuorumInfo;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ListTransactionsOptions;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.ListPartitionReassignmentsResult;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.PartitionReassignment;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class RunnelJavaClient {
    /** How long a consume keeps polling after it has the expected count, to catch extras. */
    static final long LINGER_AFTER_EXPECTED_MS = 1_000;
    /** Bound on every admin call and on waiting for the producer's callbacks. */
    static final long OPERATION_TIMEOUT_MS = 120_000;

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            usage();
        }
        int status;
        switch (args[0]) {
            case "produce": status = produce(args); break;
            case "consume": status = consume(args); break;
            case "admin": status = admin(args); break;
            case "txn": status = txn(args); break;
            case "fence": status = fence(args); break;
            case "reassign": status = reassign(args); break;
            case "features": status = features(args); break;
            case "quotas": status = quotas(args); break;
            case "matrix": status = SecurityMatrix.run(args); break;
            default: usage(); return;
        }
        System.out.flush();
        System.exit(status);
    }

    static void usage() {
        System.err.println("usage: RunnelJavaClient produce <bootstrap> <topic> <count> [key=value...]\n"
                + "       RunnelJavaClient consume <bootstrap> <topic> <expected> <timeoutMs> [group]\n"
                + "       RunnelJavaClient admin <bootstrap> create <topic> <partitions> <rf> [key=value...]\n"
                + "       RunnelJavaClient admin <bootstrap> describe|describe-by-id|configs <topic>\n"
                + "       RunnelJavaClient admin <bootstrap> quorum -\n"
                + "       RunnelJavaClient admin <bootstrap> logdirs <brokerId,...> [key=value...]\n"
                + "       RunnelJavaClient admin <bootstrap> transactions <transactional.id> <topic> <partition>\n"
                + "       RunnelJavaClient reassign <bootstrap> alter <topic>:<partition>=<ids>|cancel ...\n"
                + "       RunnelJavaClient reassign <bootstrap> list [<topic>:<partition> ...]\n"
                + "       RunnelJavaClient txn <bootstrap> <topic> <transactional.id> <count> commit|abort [key=value...]\n"
                + "         (send.offsets.group=G send.offsets.topic=T send.offsets.offset=N: also commit that offset)\n"
                + "       RunnelJavaClient fence <bootstrap> <topic> <transactional.id>\n"
                + "       RunnelJavaClient features <bootstrap> describe\n"
                + "       RunnelJavaClient features <bootstrap> update <feature> <level> UPGRADE|SAFE_DOWNGRADE|UNSAFE_DOWNGRADE [dry-run]");
        System.exit(2);
    }

    // -- produce ---------------------------------------------------------------------------------

    static int produce(String[] args) throws InterruptedException {
        if (args.length < 4) {
            usage();
        }
        String topic = args[2];
        int count = Integer.parseInt(args[3]);
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.putAll(keyValues(args, 4));

        RecordMetadata[] acknowledged = new RecordMetadata[count];
        CountDownLatch callbacks = new CountDownLatch(count);
        AtomicInteger failures = new AtomicInteger();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            for (int i = 0; i < count; i++) {
                final int index = i;
                String value = "m-" + i;
                producer.send(new ProducerRecord<>(topic, "k-" + (i % 10), value), (metadata, error) -> {
                    if (error != null) {
                        failures.incrementAndGet();
                        System.err.println("send " + value + " failed: " + describe(error));
                    } else {
                        acknowledged[index] = metadata;
                    }
                    callbacks.countDown();
                });
            }
            producer.flush();
            if (!callbacks.await(OPERATION_TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
                System.err.println("timed out waiting for " + callbacks.getCount() + " send callbacks");
                return 1;
            }
        }
        for (int i = 0; i < count; i++) {
            RecordMetadata m = acknowledged[i];
            if (m != null) {
                System.out.println(recordJson("k-" + (i % 10), "m-" + i, m.partition(), m.offset()));
            }
        }
        return failures.get() == 0 ? 0 : 1;
    }

    // -- txn -------------------------------------------------------------------------------------

    /** One transaction of `count` records ("t-0"...), committed or aborted; prints {"ended": ...}. */
    static int txn(String[] args) {
        if (args.length < 6) {
            usage();
        }
        String topic = args[2];
        int count = Integer.parseInt(args[4]);
        boolean commit = args[5].equals("commit");
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, args[3]);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        Map<String, String> extra = keyValues(args, 6);
        // send.offsets.group / .topic / .offset: the transaction also commits that offset of
        // partition 0 of that topic for that group (sendOffsetsToTransaction).
        String offsetsGroup = extra.remove("send.offsets.group");
        String offsetsTopic = extra.remove("send.offsets.topic");
        String offsetsOffset = extra.remove("send.offsets.offset");
        // wait.before.end.ms: sleep that long before ending the transaction (one left open past
        // its transaction.timeout.ms, which the coordinator aborts).
        String waitBeforeEnd = extra.remove("wait.before.end.ms");
        props.putAll(extra);
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            producer.beginTransaction();
            for (int i = 0; i < count; i++) {
                producer.send(new ProducerRecord<>(topic, "k-" + i, "t-" + i));
            }
            producer.flush();
            if (offsetsGroup != null) {
                producer.sendOffsetsToTransaction(
                    Map.of(new TopicPartition(offsetsTopic, 0), new OffsetAndMetadata(Long.parseLong(offsetsOffset))),
                    new org.apache.kafka.clients.consumer.ConsumerGroupMetadata(offsetsGroup));
            }
            if (waitBeforeEnd != null) {
                Thread.sleep(Long.parseLong(waitBeforeEnd));
            }
            if (commit) {
                producer.commitTransaction();
            } else {
                producer.abortTransaction();
            }
        } catch (RuntimeException e) {
            System.err.println("transaction failed: " + describe(e));
            System.out.println("{\"failed\": " + quote(e.getClass().getSimpleName()) + "}");
            return 1;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 1;
        }
        System.out.println("{\"ended\": " + quote(commit ? "commit" : "abort") + "}");
        return 0;
    }

    /** Two producers of one transactional id: the first opens a transaction and writes
     *  "zombie-<i>", the second's initTransactions fences it; the first's commit must fail; the
     *  second commits "survivor". Prints the first's failure. */
    static int fence(String[] args) {
        if (args.length < 4) {
            usage();
        }
        String topic = args[2];
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, args[3]);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        String failure = null;
        try (KafkaProducer<String, String> first = new KafkaProducer<>(props);
            KafkaProducer<String, String> second = new KafkaProducer<>(props)) {
            first.initTransactions();
            first.beginTransaction();
            for (int i = 0; i < 5; i++) {
                first.send(new ProducerRecord<>(topic, 0, "k", "zombie-" + i));
            }
            first.flush();
            second.initTransactions();
            try {
                first.commitTransaction();
            } catch (RuntimeException e) {
                failure = e.getClass().getSimpleName();
            }
            second.beginTransaction();
            second.send(new ProducerRecord<>(topic, 0, "k", "survivor"));
            second.commitTransaction();
        } catch (RuntimeException e) {
            System.err.println("fence failed: " + describe(e));
            return 1;
        }
        System.out.println("{\"first_commit\": " + quote(failure == null ? "committed" : failure) + "}");
        return 0;
    }

    // -- consume ---------------------------------------------------------------------------------

    static int consume(String[] args) {
        if (args.length < 5) {
            usage();
        }
        String topic = args[2];
        int expected = Integer.parseInt(args[3]);
        long timeoutMs = Long.parseLong(args[4]);
        String group = args.length > 5 && !args[5].equals("-") ? args[5] : null;

        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.putAll(keyValues(args, 6));   // client settings after the group ("-" for none)
        if (group != null) {
            props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");   // committed below, per poll
        }

        int received = 0;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> assigned = new ArrayList<>();
            if (group != null) {
                consumer.subscribe(Collections.singletonList(topic));
            } else {
                for (PartitionInfo p : consumer.partitionsFor(topic, Duration.ofMillis(timeoutMs))) {
                    assigned.add(new TopicPartition(topic, p.partition()));
                }
                consumer.assign(assigned);
                consumer.seekToBeginning(assigned);
            }
            long deadline = System.currentTimeMillis() + timeoutMs;
            long stopAt = Long.MAX_VALUE;
            while (true) {
                long now = System.currentTimeMillis();
                if (stopAt == Long.MAX_VALUE && received >= expected) {
                    stopAt = now + LINGER_AFTER_EXPECTED_MS;
                }
                if (now >= stopAt || now >= deadline) {
                    break;
                }
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : records) {
                    System.out.println(recordJson(r.key(), r.value(), r.partition(), r.offset()));
                    received++;
                }
                if (group != null && !records.isEmpty()) {
                    consumer.commitSync();
                }
            }
            if (group != null) {
                Map<Integer, Long> committed = new TreeMap<>();
                for (Map.Entry<TopicPartition, OffsetAndMetadata> e : consumer.committed(consumer.assignment()).entrySet()) {
                    committed.put(e.getKey().partition(), e.getValue() == null ? -1L : e.getValue().offset());
                }
                StringBuilder json = new StringBuilder("{\"committed\": {");
                String sep = "";
                for (Map.Entry<Integer, Long> e : committed.entrySet()) {
                    json.append(sep).append(quote(String.valueOf(e.getKey()))).append(": ").append(e.getValue());
                    sep = ", ";
                }
                System.out.println(json.append("}}"));
            }
        } catch (RuntimeException e) {
            System.err.println("consume failed after " + received + " records: " + describe(e));
            return 1;
        }
        if (received < expected) {
            System.err.println("timed out after " + timeoutMs + " ms with " + received + " of " + expected + " records");
            return 3;
        }
        return 0;
    }

    // -- admin -----------------------------------------------------------------------------------

    static int admin(String[] args) throws InterruptedException {
        if (args.length < 4) {
            usage();
        }
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        String topic = args[3];
        if (args[2].equals("logdirs")) {
            props.putAll(keyValues(args, 4));   // client settings (security) for this command
        }
        try (Admin admin = Admin.create(props)) {
            switch (args[2]) {
                case "create": {
                    if (args.length < 6) {
                        usage();
                    }
                    NewTopic newTopic = new NewTopic(topic, Integer.parseInt(args[4]), Short.parseShort(args[5]))
                            .configs(keyValues(args, 6));
                    admin.createTopics(Collections.singletonList(newTopic)).all().get(OPERATION_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                    System.out.println("{\"created\": " + quote(topic) + "}");
                    return 0;
                }
                case "describe":
                case "describe-by-id": {
                    TopicDescription d = admin.describeTopics(Collections.singletonList(topic))
                            .allTopicNames().get(OPERATION_TIMEOUT_MS, TimeUnit.MILLISECONDS).get(topic);
                    if (args[2].equals("describe-by-id")) {
                        // The same topic again by its id (a Metadata request with the id, and "" as the name).
                        Uuid id = d.topicId();
                        d = admin.describeTopics(TopicCollection.ofTopicIds(Collections.singletonList(id)))
                                .allTopicIds().get(OPERATION_TIMEOUT_MS, TimeUnit.MILLISECONDS).get(id);
                    }
                    StringBuilder json = new StringBuilder("{\"topic\": ").append(quote(d.name()))
                            .append(", \"topicId\": ").append(quote(String.valueOf(d.topicId())))
                            .append(", \"internal\": ").append(d.isInternal())
                            .append(", \"partitions\": [");
                    String sep = "";
                    for (TopicPartitionInfo p : d.partitions()) {
                        json.append(sep).append("{\"partition\": ").append(p.partition())
                                .append(", \"leader\": ").append(p.leader() == null ? -1 : p.leader().id())
                                .append(", \"replicas\": ").append(nodeIds(p.replicas()))
                                .append(", \"isr\": ").append(nodeIds(p.isr())).append("}");
                        sep = ", ";
                    }
                    System.out.println(json.append("]}"));
                    return 0;
                }
                case "quorum": {
                    // Admin.describeMetadataQuorum through a broker (the <topic> argument is unused).
                    QuorumInfo q = admin.describeMetadataQuorum().quorumInfo()
                            .get(OPERATION_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                    StringBuilder json = new StringBuilder("{\"leaderId\": ").append(q.leaderId())
                            .append(", \"leaderEpoch\": ").append(q.leaderEpoch())
                            .append(", \"highWatermark\": ").append(q.highWatermark())
                            .append(", \"voters\": [");
                    String sep = "";
                    for (QuorumInfo.ReplicaState v : q.voters()) {
                        json.append(sep).append(v.replicaId());
                        sep = ", ";
                    }
                    json.append("], \"observers\": [");
                    sep = "";
                    for (QuorumInfo.ReplicaState o : q.observers()) {
                        json.append(sep).append(o.replicaId());
                        sep = ", ";
                    }
                    System.out.println(json.append("]}"));
                    return 0;
                }
                case "logdirs": {
                    // Admin.describeLogDirs of the brokers named (the <topic> argument): one line
                    // per broker, {"broker", "logDirs": [{"path", "error", "totalBytes",
                    // "usableBytes", "replicas": [{"partition": "t-0", "size", "offsetLag", "future"}]}]}.
                    List<Integer> brokers = new ArrayList<>();
                    for (String id : topic.split(",")) {
                        brokers.add(Integer.parseInt(id));
                    }
                    Map<Integer, Map<String, LogDirDescription>> all = admin.describeLogDirs(brokers)
                            .allDescriptions().get(OPERATION_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                    for (Integer broker : new TreeMap<>(all).keySet()) {
                        StringBuilder json = new StringBuilder("{\"broker\": ").append(broker).append(", \"logDirs\": [");
                        String sep = "";
                        for (Map.Entry<String, LogDirDescription> dir : new TreeMap<>(all.get(broker)).entrySet()) {
                            LogDirDescription d = dir.getValue();
                            json.append(sep).append("{\"path\": ").append(quote(dir.getKey()))
                                    .append(", \"error\": ").append(d.error() == null ? "null" : quote(d.error().getClass().getSimpleName()))
                                    .append(", \"totalBytes\": ").append(d.totalBytes().orElse(-1))
                                    .append(", \"usableBytes\": ").append(d.usableBytes().orElse(-1))
                                    .append(", \"replicas\": [");
                            String rsep = "";
                            Map<String, ReplicaInfo> replicas = new TreeMap<>();
                            for (Map.Entry<TopicPartition, ReplicaInfo> r : d.replicaInfos().entrySet()) {
                                replicas.put(r.getKey().toString(), r.getValue());
                            }
                            for (Map.Entry<String, ReplicaInfo> r : replicas.entrySet()) {
                                json.append(rsep).append("{\"partition\": ").append(quote(r.getKey()))
                                        .append(", \"size\": ").append(r.getValue().size())
                                        .append(", \"offsetLag\": ").append(r.getValue().offsetLag())
                                        .append(", \"future\": ").append(r.getValue().isFuture()).append("}");
                                rsep = ", ";
                            }
                            json.append("]}");
                            sep = ", ";
                        }
                        System.out.println(json.append("]}"));
                    }
                    return 0;
                }
                case "broker-default": {
                    // `admin <bootstrap> broker-default <key> <value|->`: set (or, with "-", delete)
                    // a cluster-wide dynamic broker config, as kafka-configs --entity-default does.
                    if (args.length < 5) {
                        usage();
                    }
                    ConfigResource cluster = new ConfigResource(ConfigResource.Type.BROKER, "");
                    AlterConfigOp op = args[4].equals("-")
                            ? new AlterConfigOp(new ConfigEntry(topic, null), AlterConfigOp.OpType.DELETE)
                            : new AlterConfigOp(new ConfigEntry(topic, args[4]), AlterConfigOp.OpType.SET);
                    admin.incrementalAlterConfigs(Collections.singletonMap(cluster, Collections.singletonList(op)))
                            .all().get(OPERATION_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                    System.out.println("{\"altered\": " + quote(topic) + "}");
                    return 0;
                }
                case "configs": {
                    ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
                    Config config = admin.describeConfigs(Collections.singletonList(resource))
                            .all().get(OPERATION_TIMEOUT_MS, TimeUnit.MILLISECONDS).get(resource);
                    StringBuilder json = new StringBuilder("{");
                    String sep = "";
                    for (ConfigEntry e : config.entries()) {
                        json.append(sep).append(quote(e.name())).append(": {\"value\": ").append(quote(e.value()))
                                .append(", \"source\": ").append(quote(e.source().name())).append("}");
                        sep = ", ";
                    }
                    System.out.println(json.append("}"));
                    return 0;
                }
                case "transactions": {
                    if (args.length < 6) {
                        usage();
                    }
                    String transactionalId = topic;
                    TopicPartition tp = new TopicPartition(args[4], Integer.parseInt(args[5]));
                    System.out.println("{\"listed\": " + listings(admin.listTransactions().all()
                            .get(OPERATION_TIMEOUT_MS, TimeUnit.MILLISECONDS)) + "}");
                    ListTransactionsOptions ongoing = new ListTransactionsOptions()
                            .filterStates(Collections.singletonList(TransactionState.ONGOING));
                    System.out.println("{\"ongoing\": " + listings(admin.listTransactions(ongoing).all()
                            .get(OPERATION_TIMEOUT_MS, TimeUnit.MILLISECONDS)) + "}");
                    TransactionDescription d = admin.describeTransactions(Collections.singletonList(transactionalId))
                            .description(transactionalId).get(OPERATION_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                    List<String> parts = new ArrayList<>();
                    for (TopicPartition p : d.topicPartitions()) {
                        parts.add(quote(p.toString()));
                    }
                    Collections.sort(parts);
                    System.out.println("{\"described\": {\"coordinatorId\": " + d.coordinatorId()
                            + ", \"state\": " + quote(d.state().toString())
                            + ", \"producerId\": " + d.producerId() + ", \"producerEpoch\": " + d.producerEpoch()
                            + ", \"timeoutMs\": " + d.transactionTimeoutMs()
                            + ", \"startTimeMs\": " + d.transactionStartTimeMs().orElse(-1)
                            + ", \"partitions\": [" + String.join(", ", parts) + "]}}");
                    StringBuilder json = new StringBuilder("{\"producers\": [");
                    String sep = "";
                    for (ProducerState p : admin.describeProducers(Collections.singletonList(tp))
                            .partitionResult(tp).get(OPERATION_TIMEOUT_MS, TimeUnit.MILLISECONDS).activeProducers()) {
                        json.append(sep).append("{\"producerId\": ").append(p.producerId())
                                .append(", \"producerEpoch\": ").append(p.producerEpoch())
                                .append(", \"coordinatorEpoch\": ").append(p.coordinatorEpoch().orElse(-1))
                                .append(", \"lastSequence\": ").append(p.lastSequence())
                                .append(", \"lastTimestamp\": ").append(p.lastTimestamp())
                                .append(", \"currentTransactionStartOffset\": ")
                                .append(p.currentTransactionStartOffset().orElse(-1)).append("}");
                        sep = ", ";
                    }
                    System.out.println(json.append("]}"));
                    return 0;
                }
                default:
                    usage();
                    return 2;
            }
        } catch (ExecutionException | TimeoutException e) {
            Throwable cause = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
            System.out.println("{\"error\": " + quote(cause.getClass().getSimpleName())
                    + ", \"message\": " + quote(String.valueOf(cause.getMessage())) + "}");
            System.err.println("admin " + args[2] + " " + topic + " failed: " + describe(cause));
            return 1;
        }
    }

    // -- helpers ---------------------------------------------------------------------------------

    /** key=value arguments from `from` on, in order. */
    static Map<String, String> keyValues(String[] args, int from) {
        Map<String, String> out = new LinkedHashMap<>();
        for (int i = from; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                System.err.println("expected key=value, got '" + args[i] + "'");
                System.exit(2);
            }
            out.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        return out;
    }

    static String recordJson(String key, String value, int partition, long offset) {
        return "{\"key\": " + quote(key) + ", \"value\": " + quote(value)
                + ", \"partition\": " + partition + ", \"offset\": " + offset + "}";
    }

    static String listings(java.util.Collection<TransactionListing> listings) {
        List<String> out = new ArrayList<>();
        for (TransactionListing l : listings) {
            out.add("{\"transactionalId\": " + quote(l.transactionalId()) + ", \"producerId\": " + l.producerId()
                    + ", \"state\": " + quote(l.state().toString()) + "}");
        }
        Collections.sort(out);
        return "[" + String.join(", ", out) + "]";
    }

    static String nodeIds(List<Node> nodes) {
        StringBuilder out = new StringBuilder("[");
        for (int i = 0; i < nodes.size(); i++) {
            out.append(i == 0 ? "" : ", ").append(nodes.get(i).id());
        }
        return out.append("]").toString();
    }

    /** The exception and its causes, "Class: message" each, so a broker error code is visible. */
    static String describe(Throwable error) {
        StringBuilder out = new StringBuilder();
        for (Throwable t = error; t != null; t = t.getCause() == t ? null : t.getCause()) {
            out.append(out.length() == 0 ? "" : " <- caused by ")
                    .append(t.getClass().getName()).append(": ").append(t.getMessage());
        }
        return out.toString();
    }

    /** A JSON string literal (or null). */
    static String quote(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder out = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
            }
        }
        return out.append('"').toString();
    }

    // -- reassign (KIP-455) ----------------------------------------------------------------------

    static TopicPartition partitionArg(String s) {
        int colon = s.lastIndexOf(':');
        return new TopicPartition(s.substring(0, colon), Integer.parseInt(s.substring(colon + 1)));
    }

    static String ints(List<Integer> ids) {
        StringBuilder out = new StringBuilder("[");
        for (int i = 0; i < ids.size(); i++) {
            out.append(i == 0 ? "" : ", ").append(ids.get(i));
        }
        return out.append("]").toString();
    }

    static int reassign(String[] args) throws InterruptedException {
        if (args.length < 3) {
            usage();
        }
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        try (Admin admin = Admin.create(props)) {
            switch (args[2]) {
                case "alter": {
                    Map<TopicPartition, Optional<NewPartitionReassignment>> plan = new LinkedHashMap<>();
                    for (int i = 3; i < args.length; i++) {
                        String[] parts = args[i].split("=", 2);
                        TopicPartition tp = partitionArg(parts[0]);
                        if (parts[1].equals("cancel")) {
                            plan.put(tp, Optional.empty());
                        } else {
                            List<Integer> replicas = new ArrayList<>();
                            for (String id : parts[1].split(",")) {
                                replicas.add(Integer.parseInt(id));
                            }
                            plan.put(tp, Optional.of(new NewPartitionReassignment(replicas)));
                        }
                    }
                    int status = 0;
                    Map<TopicPartition, KafkaFuture<Void>> results = admin.alterPartitionReassignments(plan).values();
                    for (Map.Entry<TopicPartition, KafkaFuture<Void>> r : results.entrySet()) {
                        String error = "null";
                        try {
                            r.getValue().get(OPERATION_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                        } catch (ExecutionException | TimeoutException e) {
                            Throwable cause = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
                            error = quote(cause.getClass().getSimpleName());
                            System.err.println("reassign " + r.getKey() + " failed: " + describe(cause));
                            status = 1;
                        }
                        System.out.println("{\"partition\": " + quote(r.getKey().toString()) + ", \"error\": " + error + "}");
                    }
                    return status;
                }
                case "list": {
                    ListPartitionReassignmentsResult listed;
                    if (args.length > 3) {
                        Set<TopicPartition> asked = new LinkedHashSet<>();
                        for (int i = 3; i < args.length; i++) {
                            asked.add(partitionArg(args[i]));
                        }
                        listed = admin.listPartitionReassignments(asked);
                    } else {
                        listed = admin.listPartitionReassignments();
                    }
                    Map<TopicPartition, PartitionReassignment> all =
                            listed.reassignments().get(OPERATION_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                    for (Map.Entry<TopicPartition, PartitionReassignment> e : all.entrySet()) {
                        PartitionReassignment r = e.getValue();
                        System.out.println("{\"partition\": " + quote(e.getKey().toString())
                                + ", \"replicas\": " + ints(r.replicas())
                                + ", \"adding\": " + ints(r.addingReplicas())
                                + ", \"removing\": " + ints(r.removingReplicas()) + "}");
                    }
                    return 0;
                }
                default:
                    usage();
                    return 2;
            }
        } catch (ExecutionException | TimeoutException e) {
            Throwable cause = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
            System.out.println("{\"error\": " + quote(cause.getClass().getSimpleName())
                    + ", \"message\": " + quote(String.valueOf(cause.getMessage())) + "}");
            System.err.println("reassign " + args[2] + " failed: " + describe(cause));
            return 1;
        }
    }

    // -- features (Admin.describeFeatures / Admin.updateFeatures, KIP-584) ------------------------
    //
    //   features <bootstrap> describe
    //       Prints {"supported": {"<feature>": [min, max]}, "finalized": {"<feature>": [min, max]},
    //       "epoch": n or -1}.
    //   features <bootstrap> update <feature> <level> <upgradeType> [dry-run]
    //       Prints {"updated": feature} or {"error": "<exception class>", "message": ...} (exit 1).

    static int features(String[] args) throws InterruptedException {
        if (args.length < 3) {
            usage();
        }
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        try (Admin admin = Admin.create(props)) {
            if (args[2].equals("describe")) {
                org.apache.kafka.clients.admin.FeatureMetadata m = admin.describeFeatures().featureMetadata()
                        .get(OPERATION_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                List<String> supported = new ArrayList<>();
                for (Map.Entry<String, org.apache.kafka.clients.admin.SupportedVersionRange> e
                        : new TreeMap<>(m.supportedFeatures()).entrySet()) {
                    supported.add(quote(e.getKey()) + ": [" + e.getValue().minVersion() + ", "
                            + e.getValue().maxVersion() + "]");
                }
                List<String> finalized = new ArrayList<>();
                for (Map.Entry<String, org.apache.kafka.clients.admin.FinalizedVersionRange> e
                        : new TreeMap<>(m.finalizedFeatures()).entrySet()) {
                    finalized.add(quote(e.getKey()) + ": [" + e.getValue().minVersionLevel() + ", "
                            + e.getValue().maxVersionLevel() + "]");
                }
                System.out.println("{\"supported\": {" + String.join(", ", supported) + "}, \"finalized\": {"
                        + String.join(", ", finalized) + "}, \"epoch\": " + m.finalizedFeaturesEpoch().orElse(-1L) + "}");
                return 0;
            }
            if (!args[2].equals("update") || args.length < 6) {
                usage();
            }
            String feature = args[3];
            org.apache.kafka.clients.admin.FeatureUpdate update = new org.apache.kafka.clients.admin.FeatureUpdate(
                    Short.parseShort(args[4]), org.apache.kafka.clients.admin.FeatureUpdate.UpgradeType.valueOf(args[5]));
            org.apache.kafka.clients.admin.UpdateFeaturesOptions options =
                    new org.apache.kafka.clients.admin.UpdateFeaturesOptions()
                            .validateOnly(args.length > 6 && args[6].equals("dry-run"));
            admin.updateFeatures(Collections.singletonMap(feature, update), options).all()
                    .get(OPERATION_TIMEOUT_MS, TimeUnit.MILLISECONDS);
            System.out.println("{\"updated\": " + quote(feature) + "}");
            return 0;
        } catch (ExecutionException | TimeoutException e) {
            Throwable cause = e.getCause() == null ? e : e.getCause();
            System.out.println("{\"error\": " + quote(cause.getClass().getSimpleName()) + ", \"message\": "
                    + quote(cause.getMessage()) + "}");
            return 1;
        }
    }

    // -- client quotas (KIP-546: Admin.alterClientQuotas / describeClientQuotas) -----------------
    //
    //   quotas <bootstrap> alter <type>=<name|<default>>[,<type>=...] [+key=value | -key]...
    //       One ClientQuotaAlteration: +key=value sets, -key removes. Prints {"altered": true}, or
    //       {"error": "<exception class>", "message": "..."} and exits 1.
    //   quotas <bootstrap> describe [<type>=<name|<default>|*>...] [strict]
    //       Prints {"entity": {type: name or null}, "quotas": {key: value}} per entity that
    //       matches (a name exactly, <default> the default entity, * any entity of the type).

    static Map<String, String> quotaEntity(String spec) {
        Map<String, String> entity = new HashMap<>();
        for (String part : spec.split(",")) {
            String[] kv = part.split("=", 2);
            entity.put(kv[0], kv[1].equals("<default>") ? null : kv[1]);
        }
        return entity;
    }

    static int quotas(String[] args) throws InterruptedException {
        if (args.length < 3) {
            usage();
        }
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        try (Admin admin = Admin.create(props)) {
            if (args[2].equals("alter")) {
                List<org.apache.kafka.common.quota.ClientQuotaAlteration.Op> ops = new ArrayList<>();
                for (int i = 4; i < args.length; i++) {
                    if (args[i].startsWith("-")) {
                        ops.add(new org.apache.kafka.common.quota.ClientQuotaAlteration.Op(args[i].substring(1), null));
                    } else {
                        String[] kv = args[i].substring(1).split("=", 2);
                        ops.add(new org.apache.kafka.common.quota.ClientQuotaAlteration.Op(kv[0], Double.parseDouble(kv[1])));
                    }
                }
                org.apache.kafka.common.quota.ClientQuotaAlteration alteration =
                        new org.apache.kafka.common.quota.ClientQuotaAlteration(
                                new org.apache.kafka.common.quota.ClientQuotaEntity(quotaEntity(args[3])), ops);
                try {
                    admin.alterClientQuotas(Collections.singletonList(alteration)).all()
                            .get(OPERATION_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                    System.out.println("{\"altered\": true}");
                    return 0;
                } catch (ExecutionException | TimeoutException e) {
                    Throwable cause = e.getCause() != null ? e.getCause() : e;
                    System.out.println("{\"error\": " + quote(cause.getClass().getSimpleName()) + ", \"message\": "
                            + quote(String.valueOf(cause.getMessage())) + "}");
                    return 1;
                }
            }
            List<org.apache.kafka.common.quota.ClientQuotaFilterComponent> components = new ArrayList<>();
            boolean strict = false;
            for (int i = 3; i < args.length; i++) {
                if (args[i].equals("strict")) {
                    strict = true;
                    continue;
                }
                String[] kv = args[i].split("=", 2);
                if (kv[1].equals("<default>")) {
                    components.add(org.apache.kafka.common.quota.ClientQuotaFilterComponent.ofDefaultEntity(kv[0]));
                } else if (kv[1].equals("*")) {
                    components.add(org.apache.kafka.common.quota.ClientQuotaFilterComponent.ofEntityType(kv[0]));
                } else {
                    components.add(org.apache.kafka.common.quota.ClientQuotaFilterComponent.ofEntity(kv[0], kv[1]));
                }
            }
            org.apache.kafka.common.quota.ClientQuotaFilter filter = strict
                    ? org.apache.kafka.common.quota.ClientQuotaFilter.containsOnly(components)
                    : org.apache.kafka.common.quota.ClientQuotaFilter.contains(components);
            Map<org.apache.kafka.common.quota.ClientQuotaEntity, Map<String, Double>> found;
            try {
                found = admin.describeClientQuotas(filter).entities().get(OPERATION_TIMEOUT_MS, TimeUnit.MILLISECONDS);
            } catch (ExecutionException | TimeoutException e) {
                System.err.println("describeClientQuotas failed: " + e);
                return 1;
            }
            for (Map.Entry<org.apache.kafka.common.quota.ClientQuotaEntity, Map<String, Double>> e : found.entrySet()) {
                StringBuilder line = new StringBuilder("{\"entity\": {");
                String sep = "";
                for (Map.Entry<String, String> part : new TreeMap<>(e.getKey().entries()).entrySet()) {
                    line.append(sep).append(quote(part.getKey())).append(": ")
                            .append(part.getValue() == null ? "null" : quote(part.getValue()));
                    sep = ", ";
                }
                line.append("}, \"quotas\": {");
                sep = "";
                for (Map.Entry<String, Double> q : new TreeMap<>(e.getValue()).entrySet()) {
                    line.append(sep).append(quote(q.getKey())).append(": ").append(q.getValue());
                    sep = ", ";
                }
                System.out.println(line.append("}}"));
            }
            return 0;
        }
    }
}

// -- security matrix (issue 16): many cells in one JVM ------------------------------------------
//
//   matrix <spec.properties>
//       The JVM starts slowly, so test_security_matrix.py runs all its Java cells in one go. The
//       spec is a java.util.Properties file: `cells=a,b,...`, and for each cell
//         <cell>.kind       roundtrip | wrongpass
//         <cell>.bootstrap  <cell>.topic  <cell>.group  <cell>.count
//         <cell>.client.<key>=<value>   the client settings (security.protocol, sasl.jaas.config ...)
//         <cell>.bad.<key>=<value>      wrongpass only: settings that replace those for the bad client
//       Cells run concurrently; each prints one JSON line when done:
//         roundtrip: {"cell", "produced", "consumed": [values...], "committed": offset or -1, "error"}
//           (produce `count` records "<cell>-<i>", consume them as a member of the group,
//           commitSync, and read the committed offset of partition 0 back from the coordinator)
//         wrongpass: {"cell", "badError": "<exception class>", "badMessage", "goodOffset", "goodRead",
//           "error"}: the bad producer's send fails with the client's authentication error; then,
//           with the bad producer still open, a good producer's send is acknowledged at
//           `goodOffset` and a good consumer (assign, from the beginning) reads it (`goodRead`).
//       The exit status is 0 once every cell has printed its line (the test judges the lines).

final class SecurityMatrix {
    static final long CELL_TIMEOUT_MS = 90_000;

    static int run(String[] args) throws Exception {
        if (args.length != 2) {
            RunnelJavaClient.usage();
        }
        Properties spec = new Properties();
        try (java.io.FileInputStream in = new java.io.FileInputStream(args[1])) {
            spec.load(in);
        }
        List<String> cells = new ArrayList<>();
        for (String c : spec.getProperty("cells", "").split(",")) {
            if (!c.isBlank()) {
                cells.add(c.trim());
            }
        }
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(Math.max(1, cells.size()));
        List<java.util.concurrent.Future<String>> results = new ArrayList<>();
        for (String cell : cells) {
            results.add(pool.submit(() -> runCell(spec, cell)));
        }
        for (int i = 0; i < cells.size(); i++) {
            String line;
            try {
                line = results.get(i).get(CELL_TIMEOUT_MS * 2, TimeUnit.MILLISECONDS);
            } catch (ExecutionException | TimeoutException e) {
                line = "{\"cell\": " + RunnelJavaClient.quote(cells.get(i)) + ", \"error\": "
                        + RunnelJavaClient.quote(RunnelJavaClient.describe(e)) + "}";
            }
            synchronized (System.out) {
                System.out.println(line);
                System.out.flush();
            }
        }
        pool.shutdownNow();
        return 0;
    }

    /** `<cell>.<prefix>.*` as client properties. */
    static Properties clientProps(Properties spec, String cell, String prefix) {
        Properties out = new Properties();
        String p = cell + "." + prefix + ".";
        for (String name : spec.stringPropertyNames()) {
            if (name.startsWith(p)) {
                out.put(name.substring(p.length()), spec.getProperty(name));
            }
        }
        out.put("bootstrap.servers", spec.getProperty(cell + ".bootstrap"));
        return out;
    }

    static String runCell(Properties spec, String cell) {
        try {
            switch (spec.getProperty(cell + ".kind", "")) {
                case "roundtrip": return roundtrip(spec, cell);
                case "wrongpass": return wrongPassword(spec, cell);
                default: return "{\"cell\": " + RunnelJavaClient.quote(cell) + ", \"error\": \"unknown kind\"}";
            }
        } catch (Exception e) {
            return "{\"cell\": " + RunnelJavaClient.quote(cell) + ", \"error\": "
                    + RunnelJavaClient.quote(RunnelJavaClient.describe(e)) + "}";
        }
    }

    static KafkaProducer<String, String> producer(Properties base) {
        Properties props = new Properties();
        props.putAll(base);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        return new KafkaProducer<>(props);
    }

    static KafkaConsumer<String, String> consumer(Properties base, String group) {
        Properties props = new Properties();
        props.putAll(base);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        if (group != null) {
            props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        return new KafkaConsumer<>(props);
    }

    static String roundtrip(Properties spec, String cell) throws Exception {
        Properties client = clientProps(spec, cell, "client");
        String topic = spec.getProperty(cell + ".topic");
        int count = Integer.parseInt(spec.getProperty(cell + ".count"));
        int produced = 0;
        try (KafkaProducer<String, String> producer = producer(client)) {
            List<java.util.concurrent.Future<RecordMetadata>> sends = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                sends.add(producer.send(new ProducerRecord<>(topic, "k-" + i, cell + "-" + i)));
            }
            for (java.util.concurrent.Future<RecordMetadata> f : sends) {
                f.get(CELL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                produced++;
            }
        }
        List<String> values = new ArrayList<>();
        long committed = -1;
        TopicPartition partition = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> consumer = consumer(client, spec.getProperty(cell + ".group"))) {
            consumer.subscribe(Collections.singletonList(topic));
            long deadline = System.currentTimeMillis() + CELL_TIMEOUT_MS;
            while (values.size() < count && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    values.add(r.value());
                }
            }
            consumer.commitSync();
            OffsetAndMetadata got = consumer.committed(Collections.singleton(partition)).get(partition);
            committed = got == null ? -1 : got.offset();
        }
        StringBuilder json = new StringBuilder("{\"cell\": ").append(RunnelJavaClient.quote(cell))
                .append(", \"produced\": ").append(produced).append(", \"consumed\": [");
        for (int i = 0; i < values.size(); i++) {
            json.append(i == 0 ? "" : ", ").append(RunnelJavaClient.quote(values.get(i)));
        }
        return json.append("], \"committed\": ").append(committed).append("}").toString();
    }

    static String wrongPassword(Properties spec, String cell) throws Exception {
        Properties good = clientProps(spec, cell, "client");
        Properties bad = clientProps(spec, cell, "client");
        bad.putAll(clientProps(spec, cell, "bad"));
        String topic = spec.getProperty(cell + ".topic");
        String badError = null;
        String badMessage = null;
        long goodOffset = -1;
        boolean goodRead = false;
        try (KafkaProducer<String, String> badProducer = producer(bad)) {
            try {
                badProducer.send(new ProducerRecord<>(topic, "bad", "never")).get(CELL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
                badError = "none: the send was acknowledged";
            } catch (ExecutionException e) {
                Throwable cause = e.getCause() == null ? e : e.getCause();
                badError = cause.getClass().getName();
                badMessage = cause.getMessage();
            } catch (org.apache.kafka.common.KafkaException e) {
                badError = e.getClass().getName();
                badMessage = e.getMessage();
            }
            try (KafkaProducer<String, String> goodProducer = producer(good)) {
                goodOffset = goodProducer.send(new ProducerRecord<>(topic, "good", cell + "-good"))
                        .get(CELL_TIMEOUT_MS, TimeUnit.MILLISECONDS).offset();
            }
            TopicPartition partition = new TopicPartition(topic, 0);
            try (KafkaConsumer<String, String> consumer = consumer(good, null)) {
                consumer.assign(Collections.singletonList(partition));
                consumer.seekToBeginning(Collections.singletonList(partition));
                long deadline = System.currentTimeMillis() + CELL_TIMEOUT_MS;
                while (!goodRead && System.currentTimeMillis() < deadline) {
                    for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                        goodRead |= r.offset() == goodOffset && (cell + "-good").equals(r.value());
                    }
                }
            }
        }
        return "{\"cell\": " + RunnelJavaClient.quote(cell) + ", \"badError\": " + RunnelJavaClient.quote(badError)
                + ", \"badMessage\": " + RunnelJavaClient.quote(badMessage) + ", \"goodOffset\": " + goodOffset
                + ", \"goodRead\": " + goodRead + "}";
    }
}
