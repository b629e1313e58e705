// Runnel wire-vector generator.
//
// Uses Apache Kafka's own generated message classes (kafka-clients.jar) to
// serialize request/response bodies and headers, and writes them as hex into
// one JSON file per API so Runnel's Swift codecs can be checked byte-for-byte
// against Kafka's real serializer. See tools/vectors/README.md.
//
// Usage: java -cp <kafka-clients + jackson jars>:<classes> GenerateVectors <outDir>

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.message.RequestHeaderData;
import org.apache.kafka.common.message.ResponseHeaderData;
import org.apache.kafka.common.protocol.ApiMessage;
import org.apache.kafka.common.protocol.ByteBufferAccessor;
import org.apache.kafka.common.protocol.Message;
import org.apache.kafka.common.protocol.ObjectSerializationCache;
import org.apache.kafka.common.protocol.Readable;
import org.apache.kafka.common.protocol.types.RawTaggedField;
import org.apache.kafka.common.record.MemoryRecords;

import java.io.File;
import java.io.InputStream;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Enumeration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;

public final class GenerateVectors {

    static final String PKG = "org.apache.kafka.common.message.";
    static final ObjectMapper JSON = new ObjectMapper()
        .enable(JsonParser.Feature.ALLOW_COMMENTS);

    /** Fixed high 64 bits of every filled UUID; the low 64 bits are the fill counter. */
    static final long UUID_MSB = 0x0123456789abcdefL;
    static final long INT64_BASE = 1234567890000L;

    // ---------------------------------------------------------------- versions

    /** Inclusive version range parsed from Kafka's "0+", "3-5", "7", "none". */
    record Versions(int lo, int hi) {
        static final Versions NONE = new Versions(1, 0);

        static Versions parse(JsonNode node) {
            if (node == null || node.isNull()) return NONE;
            String s = node.asText().trim();
            if (s.isEmpty() || s.equals("none")) return NONE;
            if (s.endsWith("+")) return new Versions(Integer.parseInt(s.substring(0, s.length() - 1)), Short.MAX_VALUE);
            int dash = s.indexOf('-');
            if (dash > 0) return new Versions(Integer.parseInt(s.substring(0, dash)), Integer.parseInt(s.substring(dash + 1)));
            int v = Integer.parseInt(s);
            return new Versions(v, v);
        }

        boolean contains(int v) { return v >= lo && v <= hi; }
    }

    // ---------------------------------------------------------------- output model

    record Case(String kind, int version, String name, String hex) {}

    static final class ApiSpec {
        final String api;
        int key = -1;
        JsonNode request, response;
        ApiSpec(String api) { this.api = api; }
    }

    // ---------------------------------------------------------------- filler

    /**
     * Sets every field present in {@code version} to a deterministic non-default value.
     * One Filler is used per (message, version) "filled" case, so the counters restart
     * for each case.
     */
    static final class Filler {
        final short version;
        final Map<String, JsonNode> structs;
        int counter = 0;        // bumped for every scalar value produced
        int nullableSeen = 0;   // nullable-in-this-version fields visited so far

        Filler(short version, Map<String, JsonNode> structs) {
            this.version = version;
            this.structs = structs;
        }

        void fillStruct(Object obj, JsonNode fields) throws Exception {
            if (fields == null) return;
            for (JsonNode field : fields) {
                if (!Versions.parse(field.get("versions")).contains(version)) continue;
                String name = field.get("name").asText();
                String type = field.get("type").asText();
                boolean nullable = Versions.parse(field.get("nullableVersions")).contains(version);
                boolean tagged = Versions.parse(field.get("taggedVersions")).contains(version);

                Method getter = findMethod(obj.getClass(), name, 0);
                Method setter = findMethod(obj.getClass(), "set" + name, 1);
                Object def = getter.invoke(obj);

                if (nullable) {
                    int idx = nullableSeen++;
                    // Every other nullable field (2nd, 4th, ...) becomes null, except a
                    // tagged field whose default is already null (it would not be written).
                    if (idx % 2 == 1 && !(tagged && def == null)) {
                        setter.invoke(obj, new Object[]{null});
                        continue;
                    }
                }
                Object value = makeValue(field, type, setter.getParameterTypes()[0],
                                         setter.getGenericParameterTypes()[0], def);
                if (Objects.deepEquals(value, def)) {
                    throw new IllegalStateException("filled value for " + obj.getClass().getSimpleName()
                        + "." + name + " equals its default (" + def + ") at v" + version);
                }
                setter.invoke(obj, value);
            }
        }

        Object makeValue(JsonNode field, String type, Class<?> pt, Type gpt, Object def) throws Exception {
            if (type.startsWith("[]")) {
                String elemType = type.substring(2);
                if (isPrimitive(elemType)) {
                    List<Object> list = new ArrayList<>();
                    for (int i = 0; i < 2; i++) list.add(scalar(elemType, Object.class, null));
                    return list;
                }
                JsonNode elemFields = structFields(field, elemType);
                Class<?> elemClass;
                Collection<Object> coll;
                if (List.class.isAssignableFrom(pt)) {
                    elemClass = (Class<?>) ((ParameterizedType) gpt).getActualTypeArguments()[0];
                    coll = new ArrayList<>();
                } else {
                    // <Struct>Collection extends ImplicitLinkedHashMultiCollection<Struct>
                    elemClass = (Class<?>) ((ParameterizedType) pt.getGenericSuperclass()).getActualTypeArguments()[0];
                    @SuppressWarnings("unchecked")
                    Collection<Object> c = (Collection<Object>) pt.getConstructor().newInstance();
                    coll = c;
                }
                for (int i = 0; i < 2; i++) {
                    Object elem = elemClass.getConstructor().newInstance();
                    fillStruct(elem, elemFields);   // keys must be set before insertion
                    coll.add(elem);
                }
                return coll;
            }
            if (isPrimitive(type)) return scalar(type, pt, def);
            // Single (non-array) struct field.
            Object obj = pt.getConstructor().newInstance();
            fillStruct(obj, structFields(field, type));
            return obj;
        }

        JsonNode structFields(JsonNode field, String structName) {
            if (field.has("fields")) return field.get("fields");
            JsonNode s = structs.get(structName);
            if (s == null) throw new IllegalStateException("unknown struct type " + structName);
            return s;
        }

        int next() { return ++counter; }

        Object scalar(String type, Class<?> pt, Object def) {
            switch (type) {
                case "bool":
                    return def == null ? Boolean.TRUE : !((Boolean) def);
                case "int8": {
                    byte v;
                    do { v = (byte) ((next() - 1) % 120 + 1); } while (def != null && v == (Byte) def);
                    return v;
                }
                case "int16": {
                    short v;
                    do { v = (short) next(); } while (def != null && v == (Short) def);
                    return v;
                }
                case "uint16":
                case "int32": {
                    int v;
                    do { v = next(); } while (def != null && v == (Integer) def);
                    return v;
                }
                case "uint32":
                case "int64": {
                    long v;
                    do { v = INT64_BASE + next(); } while (def != null && v == (Long) def);
                    return v;
                }
                case "float64": {
                    double v;
                    do { v = next() + 0.5; } while (def != null && v == (Double) def);
                    return v;
                }
                case "string":
                    return "s" + next();
                case "uuid":
                    return new Uuid(UUID_MSB, next());
                case "bytes": {
                    int n = next();
                    byte[] b = {(byte) 0xb0, (byte) n, (byte) 0xb2};
                    return pt == ByteBuffer.class ? ByteBuffer.wrap(b) : b;
                }
                case "records": {
                    int n = next();
                    byte[] b = {(byte) 0xde, (byte) 0xad, (byte) 0xbe, (byte) 0xef, (byte) n};
                    return MemoryRecords.readableRecords(ByteBuffer.wrap(b));
                }
                default:
                    throw new IllegalStateException("unsupported scalar type " + type);
            }
        }
    }

    static boolean isPrimitive(String t) {
        switch (t) {
            case "bool": case "int8": case "int16": case "uint16": case "int32": case "uint32":
            case "int64": case "float64": case "string": case "uuid": case "bytes": case "records":
                return true;
            default:
                return false;
        }
    }

    static Method findMethod(Class<?> cls, String name, int params) {
        for (Method m : cls.getMethods()) {
            if (m.getParameterCount() == params && m.getName().equalsIgnoreCase(name)
                && !m.isBridge() && !m.isSynthetic()) {
                return m;
            }
        }
        throw new IllegalStateException("no method " + name + "/" + params + " on " + cls.getName());
    }

    /** Registers every struct defined anywhere in a message spec (inline and commonStructs). */
    static void collectStructs(JsonNode fields, Map<String, JsonNode> out) {
        if (fields == null) return;
        for (JsonNode f : fields) {
            if (f.has("fields")) {
                String t = f.get("type").asText();
                out.put(t.startsWith("[]") ? t.substring(2) : t, f.get("fields"));
                collectStructs(f.get("fields"), out);
            }
        }
    }

    // ---------------------------------------------------------------- serialization

    static byte[] serialize(Message msg, short version) {
        ObjectSerializationCache cache = new ObjectSerializationCache();
        int size = msg.size(cache, version);
        ByteBuffer buf = ByteBuffer.allocate(size);
        msg.write(new ByteBufferAccessor(buf), cache, version);
        if (buf.hasRemaining()) {
            throw new IllegalStateException("size() said " + size + " but write() produced " + buf.position());
        }
        return buf.array();
    }

    /** Decodes bytes with Kafka's reader, checks equality and that re-encoding is identical. */
    static void checkRoundTrip(Message original, byte[] bytes, short version) throws Exception {
        Constructor<?> ctor = original.getClass().getConstructor(Readable.class, short.class);
        ByteBuffer buf = ByteBuffer.wrap(bytes);
        Message decoded = (Message) ctor.newInstance(new ByteBufferAccessor(buf), version);
        if (buf.hasRemaining()) {
            throw new IllegalStateException("decoder left " + buf.remaining() + " bytes unread");
        }
        if (!decoded.equals(original)) {
            throw new IllegalStateException("decoded message differs: " + decoded + " vs " + original);
        }
        byte[] again = serialize(decoded, version);
        if (!Arrays.equals(again, bytes)) {
            throw new IllegalStateException("re-encoding decoded message produced different bytes");
        }
    }

    static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder(b.length * 2);
        for (byte x : b) sb.append(Character.forDigit((x >> 4) & 0xf, 16)).append(Character.forDigit(x & 0xf, 16));
        return sb.toString();
    }

    static Case encodeCase(String kind, String caseName, Message msg, short version) throws Exception {
        byte[] bytes = serialize(msg, version);
        checkRoundTrip(msg, bytes, version);
        return new Case(kind, version, caseName, hex(bytes));
    }

    static Message newMessage(String specName) throws Exception {
        return (Message) Class.forName(PKG + specName + "Data").getConstructor().newInstance();
    }

    /** All default/filled (and special) cases for one request or response spec. */
    static List<Case> messageCases(String kind, JsonNode spec, String api) throws Exception {
        String specName = spec.get("name").asText();
        Map<String, JsonNode> structs = new HashMap<>();
        JsonNode common = spec.get("commonStructs");
        if (common != null) {
            for (JsonNode s : common) {
                structs.put(s.get("name").asText(), s.get("fields"));
                collectStructs(s.get("fields"), structs);
            }
        }
        collectStructs(spec.get("fields"), structs);

        Versions valid = Versions.parse(spec.get("validVersions"));
        ApiMessage probe = (ApiMessage) newMessage(specName);
        if (probe.lowestSupportedVersion() != valid.lo() || probe.highestSupportedVersion() != valid.hi()) {
            throw new IllegalStateException("class supports " + probe.lowestSupportedVersion() + "-"
                + probe.highestSupportedVersion() + " but JSON says " + spec.get("validVersions").asText());
        }

        List<Case> out = new ArrayList<>();
        for (int v = valid.lo(); v <= valid.hi(); v++) {
            short version = (short) v;
            out.add(encodeCase(kind, "default", newMessage(specName), version));

            Message filled = newMessage(specName);
            new Filler(version, structs).fillStruct(filled, spec.get("fields"));
            out.add(encodeCase(kind, "filled", filled, version));

            if (api.equals("ApiVersions") && kind.equals("request") && v == 3) {
                Message unk = newMessage(specName);
                new Filler(version, structs).fillStruct(unk, spec.get("fields"));
                unk.unknownTaggedFields().add(new RawTaggedField(7, new byte[]{0x01, 0x02}));
                out.add(encodeCase(kind, "unknownTag", unk, version));
            }
        }
        return out;
    }

    static List<Case> headerCases() throws Exception {
        List<Case> out = new ArrayList<>();
        for (short v = 0; v <= 2; v++) {
            out.add(encodeCase("requestHeader", "default", new RequestHeaderData(), v));
            out.add(encodeCase("requestHeader", "filled", filledRequestHeader(v), v));
            if (v >= 1) {
                out.add(encodeCase("requestHeader", "nullClientId", filledRequestHeader(v).setClientId(null), v));
            }
            if (v == 2) {
                RequestHeaderData h = filledRequestHeader(v);
                h.unknownTaggedFields().add(new RawTaggedField(7, new byte[]{0x01, 0x02}));
                out.add(encodeCase("requestHeader", "unknownTag", h, v));
            }
        }
        for (short v = 0; v <= 1; v++) {
            out.add(encodeCase("responseHeader", "default", new ResponseHeaderData(), v));
            out.add(encodeCase("responseHeader", "filled", new ResponseHeaderData().setCorrelationId(0x12345678), v));
            if (v == 1) {
                ResponseHeaderData h = new ResponseHeaderData().setCorrelationId(0x12345678);
                h.unknownTaggedFields().add(new RawTaggedField(7, new byte[]{0x01, 0x02}));
                out.add(encodeCase("responseHeader", "unknownTag", h, v));
            }
        }
        return out;
    }

    static RequestHeaderData filledRequestHeader(short v) {
        RequestHeaderData h = new RequestHeaderData()
            .setRequestApiKey((short) 18)
            .setRequestApiVersion((short) 3)
            .setCorrelationId(0x12345678);
        if (v >= 1) h.setClientId("runnel-test");
        return h;
    }

    // ---------------------------------------------------------------- JSON output

    static void sortCases(List<Case> cases) {
        cases.sort((a, b) -> {
            int c = a.kind().compareTo(b.kind());
            if (c != 0) return c;
            c = Integer.compare(a.version(), b.version());
            if (c != 0) return c;
            return a.name().compareTo(b.name());
        });
    }

    static String q(String s) {
        try {
            return JSON.writeValueAsString(s);
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
    }

    static String renderCases(List<Case> cases) {
        StringBuilder sb = new StringBuilder("  \"cases\": [\n");
        for (int i = 0; i < cases.size(); i++) {
            Case c = cases.get(i);
            sb.append("    {\"kind\": ").append(q(c.kind()))
              .append(", \"version\": ").append(c.version())
              .append(", \"case\": ").append(q(c.name()))
              .append(", \"hex\": ").append(q(c.hex())).append('}')
              .append(i + 1 < cases.size() ? ",\n" : "\n");
        }
        return sb.append("  ]\n").toString();
    }

    // ---------------------------------------------------------------- main

    static String kafkaVersion() {
        try (InputStream in = ApiMessage.class.getResourceAsStream("/kafka/kafka-version.properties")) {
            java.util.Properties p = new java.util.Properties();
            if (in != null) p.load(in);
            return p.getProperty("version", "unknown");
        } catch (Exception e) {
            return "unknown";
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: GenerateVectors <outDir>");
            System.exit(64);
        }
        Path outDir = Path.of(args[0]);
        Files.createDirectories(outDir);

        File jar = new File(ApiMessage.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        Map<String, ApiSpec> apis = new TreeMap<>();
        try (JarFile jf = new JarFile(jar)) {
            Enumeration<JarEntry> entries = jf.entries();
            while (entries.hasMoreElements()) {
                JarEntry e = entries.nextElement();
                String n = e.getName();
                if (!n.startsWith("common/message/") || !n.endsWith(".json") || n.indexOf('/', 15) >= 0) continue;
                JsonNode spec;
                try (InputStream in = jf.getInputStream(e)) {
                    spec = JSON.readTree(in);
                }
                String type = spec.path("type").asText();
                if (!type.equals("request") && !type.equals("response")) continue;  // header, data, ...
                String name = spec.get("name").asText();
                String suffix = type.equals("request") ? "Request" : "Response";
                if (!name.endsWith(suffix)) throw new IllegalStateException("odd spec name " + name);
                String api = name.substring(0, name.length() - suffix.length());
                ApiSpec a = apis.computeIfAbsent(api, ApiSpec::new);
                a.key = spec.get("apiKey").asInt();
                if (type.equals("request")) a.request = spec; else a.response = spec;
            }
        }

        int written = 0, totalCases = 0;
        long totalBytes = 0;
        List<String> failures = new ArrayList<>();
        for (ApiSpec a : apis.values()) {
            List<Case> cases = new ArrayList<>();
            try {
                if (a.request != null) cases.addAll(messageCases("request", a.request, a.api));
                if (a.response != null) cases.addAll(messageCases("response", a.response, a.api));
            } catch (Throwable t) {
                Throwable root = t instanceof InvocationTargetException ite && ite.getCause() != null ? ite.getCause() : t;
                failures.add(a.api + ": " + root);
                continue;
            }
            sortCases(cases);
            String text = "{\n  \"api\": " + q(a.api) + ",\n  \"key\": " + a.key + ",\n" + renderCases(cases) + "}\n";
            Files.writeString(outDir.resolve(a.api + ".json"), text, StandardCharsets.UTF_8);
            written++;
            totalCases += cases.size();
            totalBytes += text.length();
        }

        try {
            List<Case> h = headerCases();
            sortCases(h);
            String text = "{\n" + renderCases(h) + "}\n";
            Files.writeString(outDir.resolve("Headers.json"), text, StandardCharsets.UTF_8);
            totalCases += h.size();
            totalBytes += text.length();
            System.out.println("Headers.json: " + h.size() + " cases");
        } catch (Throwable t) {
            failures.add("Headers: " + t);
        }

        System.out.println("kafka-clients: " + jar + " (" + kafkaVersion() + ")");
        System.out.println("APIs written: " + written + " of " + apis.size());
        System.out.println("cases: " + totalCases + " (" + (totalBytes / 1024) + " KiB of JSON) -> " + outDir);
        System.out.println("failures: " + failures.size());
        for (String f : failures) System.out.println("  SKIPPED " + f);
        if (!failures.isEmpty()) System.exit(1);
    }
}
