/**
 * The NATS connection's cork-per-turn helper, lent to the socket transports (which never import
 * the bus themselves) for batching a connection's answers per tick.
 */
export { corkPerTurn } from "@mcpq/bus";
