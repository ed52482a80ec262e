"""The GraphQL documents the collector sends (GitHub's public schema).

One issues page brings 100 issues with everything the study needs: labels, reactions, author
association, the first 100 comments, the pull requests that close the issue and the
cross-referencing ones (timeline). GitHub charges it about 4 points (its cost formula).
"""

from __future__ import annotations

RATE = "rateLimit { limit cost remaining resetAt }"

PR_FIELDS = """
fragment PRFields on PullRequest {
  number title state url mergedAt additions deletions changedFiles
  repository { nameWithOwner }
}
"""

COMMENT_FIELDS = """
fragment CommentFields on IssueComment {
  databaseId author { login } authorAssociation body createdAt updatedAt url
}
"""

ISSUE_FIELDS = """
fragment IssueFields on Issue {
  number title body state stateReason url createdAt updatedAt closedAt
  author { login }
  authorAssociation
  labels(first: 50) { totalCount nodes { name } }
  reactionGroups { content reactors { totalCount } }
  comments(first: 100) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { ...CommentFields }
  }
  closedByPullRequestsReferences(first: 10, includeClosedPrs: true) { nodes { ...PRFields } }
  timelineItems(first: 50, itemTypes: [CROSS_REFERENCED_EVENT, CLOSED_EVENT]) {
    nodes {
      __typename
      ... on CrossReferencedEvent {
        willCloseTarget
        source { __typename ... on PullRequest { ...PRFields } }
      }
      ... on ClosedEvent { closer { __typename ... on PullRequest { ...PRFields } } }
    }
  }
}
""" + PR_FIELDS + COMMENT_FIELDS

ISSUES_PAGE = """
query IssuesPage($owner: String!, $name: String!, $first: Int!, $after: String,
                 $since: DateTime, $states: [IssueState!], $labels: [String!]) {
  RATE
  repository(owner: $owner, name: $name) {
    issues(first: $first, after: $after, states: $states, labels: $labels,
           orderBy: {field: UPDATED_AT, direction: ASC}, filterBy: {since: $since}) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes { ...IssueFields }
    }
  }
}
""".replace("RATE", RATE) + ISSUE_FIELDS


def comments_query(n: int) -> str:
    """Next comment pages of ``n`` issues in one request (aliases c0..c{n-1})."""
    params = ", ".join(f"$n{i}: Int!, $a{i}: String" for i in range(n))
    parts = "\n".join(
        f"    c{i}: issue(number: $n{i}) {{ comments(first: 100, after: $a{i}) "
        f"{{ totalCount pageInfo {{ hasNextPage endCursor }} nodes {{ ...CommentFields }} }} }}"
        for i in range(n)
    )
    return (f"query MoreComments($owner: String!, $name: String!, {params}) {{\n  {RATE}\n"
            f"  repository(owner: $owner, name: $name) {{\n{parts}\n  }}\n}}\n" + COMMENT_FIELDS)  # fmt: skip


def issues_by_number_query(n: int) -> str:
    """``n`` issues by number in one request (aliases i0..i{n-1}), for hydrating references."""
    params = ", ".join(f"$n{i}: Int!" for i in range(n))
    parts = "\n".join(f"    i{i}: issue(number: $n{i}) {{ ...IssueFields }}" for i in range(n))
    return (f"query Hydrate($owner: String!, $name: String!, {params}) {{\n  {RATE}\n"
            f"  repository(owner: $owner, name: $name) {{\n{parts}\n  }}\n}}\n" + ISSUE_FIELDS)  # fmt: skip
