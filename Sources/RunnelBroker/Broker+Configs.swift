import NIOCore
import RunnelCore
import RunnelMetadata
import RunnelSecurity
import RunnelWire

extension Broker {
    func describeConfigs(_ request: DescribeConfigsRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let image = self.image
        let resolver = settings.resolver
        let auth = authorization(context)
        var response = DescribeConfigsResponse()
        for resource in request.resources {
            var result = DescribeConfigsResponse.DescribeConfigsResult(
                errorCode: 0, errorMessage: nil, resourceType: resource.resourceType,
                resourceName: resource.resourceName)
            defer { response.results.append(result) }
            if let code = Self.configRefusal(
                auth, .describeConfigs, resourceType: resource.resourceType, name: resource.resourceName)
            {
                result.errorCode = code.rawValue
                continue
            }
            let resolved: [ResolvedConfig]
            switch ConfigResourceType(rawValue: resource.resourceType) {
            case .topic:
                guard QuorumNames.isValidTopicName(resource.resourceName) else {
                    result.errorCode = ErrorCode.invalidTopicException.rawValue
                    result.errorMessage = "Topic name \(resource.resourceName) is illegal."
                    continue
                }
                guard image.topic(named: resource.resourceName) != nil else {
                    result.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
                    result.errorMessage = "The topic '\(resource.resourceName)' does not exist."
                    continue
                }
                resolved = resolver.topicConfigs(topic: resource.resourceName, image: image)
            case .broker:
                guard resource.resourceName.isEmpty || Int32(resource.resourceName) == settings.nodeId else {
                    result.errorCode = ErrorCode.invalidRequest.rawValue
                    result.errorMessage = "Broker id \(resource.resourceName) is not this broker (\(settings.nodeId))."
                    continue
                }
                resolved = resolver.brokerConfigs(brokerName: resource.resourceName, image: image)
            case .brokerLogger:
                resolved = []
            default:
                result.errorCode = ErrorCode.invalidRequest.rawValue
                result.errorMessage = "Unsupported resource type \(resource.resourceType)."
                continue
            }
            let keys = resource.configurationKeys.map(Set.init)
            result.configs = resolved.filter { keys == nil || keys!.contains($0.name) }.map { c in
                var out = DescribeConfigsResponse.DescribeConfigsResourceResult(
                    name: c.name, value: c.value, readOnly: c.readOnly, isDefault: c.isDefault,
                    configSource: c.source.rawValue, isSensitive: c.isSensitive)
                if request.includeSynonyms {
                    out.synonyms = c.synonyms.map {
                        .init(name: $0.name, value: c.isSensitive ? nil : $0.value, source: $0.source.rawValue)
                    }
                }
                if version >= 3 {
                    out.configType = c.type.rawValue
                    out.documentation = request.includeDocumentation ? c.documentation : nil
                }
                return out
            }
        }
        return respond(response, version: version, context: context)
    }

    func describeCluster(_ request: DescribeClusterRequest, version: Int16, context: RequestContext) -> RequestOutcome {
        let image = self.image
        var response = DescribeClusterResponse()
        response.clusterId = settings.clusterId
        if request.endpointType == 2 {
            // Controllers are reached through their own listener; brokers do not list them.
            response.errorCode = ErrorCode.unsupportedEndpointType.rawValue
            response.errorMessage = "This node is not a controller endpoint."
            return respond(response, version: version, context: context)
        }
        let brokers = liveBrokers(image, listener: context.listener)
        response.brokers = brokers.map { .init(brokerId: $0.id, host: $0.host, port: Int32($0.port), rack: $0.rack) }
        response.controllerId = brokers.first?.id ?? -1
        response.endpointType = request.endpointType
        // Kafka answers DescribeCluster to anyone; the operations on the cluster only to those who may describe it.
        let auth = authorization(context)
        if request.includeClusterAuthorizedOperations {
            response.clusterAuthorizedOperations = auth.allows(.describe, .cluster) ? auth.operationsField(.cluster) : 0
        }
        return respond(response, version: version, context: context)
    }
}
