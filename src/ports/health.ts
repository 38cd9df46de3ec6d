/**
 * One dependency the service needs to be ready (a server that answers, the migrations
 * applied, a subscription attached). `check` resolves when it is fine and rejects with
 * what is wrong (the message is shown to the operator: no secret in it).
 */
export interface HealthCheck {
  /** Stable, short: `postgres`, `migrations`, `redis`, `nats`, `inbound_consumer`, `control_subscription`, `query_subscription`. */
  readonly name: string;
  check(): Promise<void>;
}
