{#-
  Top 3 destinations per known user, blending the user's own interest with overall popularity.

  interest(u, d) = sum over u's events on d of weight * 0.5 ^ (age_days / half_life)
      weight: search var('reco_weight_search') = 1, click var('reco_weight_click') = 3,
              conversion var('reco_weight_conversion') = 5 (a conversion's destination is its
              click's result destination); age = as_of - event time; half_life = var('reco_half_life_days').
  popularity(d) = the same sum over every event (all users, anonymous included), divided by the
      largest destination's, so in [0, 1].
  affinity(u, d) = interest / (interest + var('reco_saturation')): saturating, in [0, 1).
  score(u, d) = share * affinity + (1 - share) * popularity, share = var('reco_interest_share') = 0.7.

  Candidates are the destinations the user showed interest in; they are ranked by score (ties:
  higher interest, then name), destination_2/3 are NULL when the user has fewer. `score` is the
  top destination's score rounded to 4 decimals, in [0, 1]. generated_at is the as-of time.
-#}
with int_user_journeys as (
    select * from {{ ref('int_user_journeys') }}
),

stg_click_events as (
    select * from {{ ref('stg_click_events') }}
),

int_conversions as (
    select * from {{ ref('int_conversions') }}
),

int_as_of as (
    select * from {{ ref('int_as_of') }}
),

events as (
    select user_id, destination, searched_at as event_time, {{ var('reco_weight_search') }} as weight
    from int_user_journeys
    where destination is not null
    union all
    select c.user_id, coalesce(c.result_destination, j.destination), c.event_time, {{ var('reco_weight_click') }}
    from stg_click_events as c
    left join int_user_journeys as j on j.search_event_id = c.search_event_id
    where coalesce(c.result_destination, j.destination) is not null
    union all
    select user_id, destination, converted_at, {{ var('reco_weight_conversion') }}
    from int_conversions
    where destination is not null
),

decayed as (
    select
        e.user_id,
        e.destination,
        e.weight * power(
            0.5,
            greatest({{ seconds_between('e.event_time', 'a.as_of') }}, 0) / (86400.0 * {{ var('reco_half_life_days') }})
        ) as interest
    from events as e
    cross join int_as_of as a
),

popularity as (
    select destination, sum(interest) as popularity
    from decayed
    group by destination
),

popularity_scaled as (
    select destination, popularity / nullif(max(popularity) over (), 0) as popularity_share
    from popularity
),

user_interest as (
    select user_id, destination, sum(interest) as interest
    from decayed
    where user_id is not null
    group by user_id, destination
),

scored as (
    select
        i.user_id,
        i.destination,
        i.interest,
        {{ var('reco_interest_share') }} * (i.interest / (i.interest + {{ var('reco_saturation') }}))
        + (1 - {{ var('reco_interest_share') }}) * coalesce(p.popularity_share, 0) as score
    from user_interest as i
    left join popularity_scaled as p on p.destination = i.destination
),

ranked as (
    select
        user_id,
        destination,
        {{ round_float('score', 4) }} as score,
        row_number() over (
            partition by user_id order by {{ round_float('score', 6) }} desc, interest desc, destination
        ) as destination_rank
    from scored
)

select
    {{ user_key('r.user_id') }} as user_id,
    max(case when r.destination_rank = 1 then r.destination end) as destination_1,
    max(case when r.destination_rank = 2 then r.destination end) as destination_2,
    max(case when r.destination_rank = 3 then r.destination end) as destination_3,
    max(case when r.destination_rank = 1 then r.score end) as score,
    max(a.as_of) as generated_at
from ranked as r
cross join int_as_of as a
where r.destination_rank <= 3
group by r.user_id
